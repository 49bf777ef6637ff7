"""Many models in one run (issue 15): -O DIR, --suffix, -r and --check over
a folder of 20 models (foldable fixtures, unchanged ones, one in training
mode, one malformed, one whose check fails by construction) with -j 1 and
-j 4; usage errors; external data; a worker killed mid-run; signals and the
progress line on a terminal.

Expected results come from the fixture manifest (what each fixture's
generator meant to fold), from numpy (why the constructed model's check
must fail), from a sorted walk in Python (the order), and from the
one-model form run on each file (the outputs must be the same bytes).
"""

import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import pytest

import conftest as C

with open(os.path.join(C.FIXTURES, "manifest.json")) as _f:
    MANIFEST = {f["file"]: f["expect"] for f in json.load(_f)["fixtures"]}

# name in the folder -> fixture; the manifest says what folds.
FOLDABLE = {
    "chain_conv_bn.onnx": "chain_conv_bn.onnx",
    "chains_fixed_point.onnx": "chains_fixed_point.onnx",
    "convs/conv1d_bn.onnx": "conv1d_bn.onnx",
    "convs/conv2d_bn_nobias.onnx": "conv2d_bn_nobias.onnx",
    "convs/conv2d_group2_bn.onnx": "conv2d_group2_bn.onnx",
    "convs/deep/conv3d_bn.onnx": "conv3d_bn.onnx",
    "convs/deep/conv_depthwise_bn.onnx": "conv_depthwise_bn.onnx",
    "conv_f16.onnx": "conv_f16.onnx",
    "convt2d_group2_bn.onnx": "convt2d_group2_bn.onnx",
    "convt3d_bn.onnx": "convt3d_bn.onnx",
    "example.onnx": "example.onnx",
    "gemm_bn.onnx": "gemm_bn.onnx",
    "matmul_bn.onnx": "matmul_bn.onnx",
    "if_subgraph.onnx": "if_subgraph.onnx",
    "bn_opset9.onnx": "bn_opset9.onnx",
}
UNCHANGED = {"no_bn.onnx": "no_bn.onnx", "guard_other_consumer.onnx": "guard_other_consumer.onnx"}
TRAINING = "training/guard_training_mode14.onnx"
MALFORMED = "broken.onnx"
CHECK_FAILS = "fp16/subnormal_weights.onnx"
N_MODELS = len(FOLDABLE) + len(UNCHANGED) + 3

RE_TIME = re.compile(r" \((\d+ ms|\d+\.\d\d s)\)$|; (\d+ ms|\d+\.\d\d s)$")


def subnormal_model():
    """A float16 Conv -> BN whose folded weights land among float16's
    subnormals, where the spacing is 2^-24: w * s = 1.4 * 2^-24 rounds to
    2^-24, 29% off, while the original multiplies in the normal range. The
    Conv reads x + 30000 (large values: 256 channels x 30000 x 2^-10 =
    7500 before the BN), so the output is far from 0 and the 29% shows."""
    c_in, c_out = 256, 4
    w = np.full((c_out, c_in, 1, 1), 2.0 ** -10, np.float16)
    var = np.full(c_out, 4.0, np.float32)
    eps = 1e-5
    s = 1.4 * 2.0 ** -14  # the BN's per-channel factor scale / sqrt(var + eps)
    scale = (s * np.sqrt(var.astype(np.float64) + np.float32(eps))).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([30000], np.float16), "shift"),
             numpy_helper.from_array(w, "conv.weight"),
             numpy_helper.from_array(scale, "bn.scale"),
             numpy_helper.from_array(np.full(c_out, 0.25, np.float32), "bn.B"),
             numpy_helper.from_array(np.full(c_out, 0.5, np.float32), "bn.mean"),
             numpy_helper.from_array(var, "bn.var")]
    nodes = [helper.make_node("Add", ["x", "shift"], ["u"], name="shift"),
             helper.make_node("Conv", ["u", "conv.weight"], ["c"], name="conv"),
             helper.make_node("BatchNormalization",
                              ["c", "bn.scale", "bn.B", "bn.mean", "bn.var"], ["y"],
                              name="bn", epsilon=eps)]
    graph = helper.make_graph(
        nodes, "subnormal", [helper.make_tensor_value_info("x", TensorProto.FLOAT16,
                                                           [1, c_in, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, c_out, 2, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    onnx.checker.check_model(model)
    # Independently of bnfold: the one rounding of the folded weight to
    # float16 moves it by far more than any tolerance.
    exact = float(w[0, 0, 0, 0]) * float(scale[0]) / np.sqrt(float(var[0]) + float(np.float32(eps)))
    stored = float(np.float16(exact))
    assert abs(stored - exact) / exact > 0.2, (exact, stored)
    return model


def make_folder(root):
    """The 20 models; returns the folder."""
    models = root / "models"
    for name, fixture in list(FOLDABLE.items()) + list(UNCHANGED.items()):
        os.makedirs(os.path.dirname(str(models / name)), exist_ok=True)
        shutil.copy(os.path.join(C.FIXTURES, fixture), str(models / name))
    os.makedirs(str(models / "training"), exist_ok=True)
    shutil.copy(os.path.join(C.FIXTURES, "guard_training_mode14.onnx"), str(models / TRAINING))
    with open(os.path.join(C.FIXTURES, "example.onnx"), "rb") as f:
        data = f.read()
    with open(str(models / MALFORMED), "wb") as f:
        f.write(data[:len(data) // 2])  # cut mid-tensor: not a valid ONNX model
    os.makedirs(str(models / "fp16"), exist_ok=True)
    onnx.save(subnormal_model(), str(models / CHECK_FAILS))
    return models


def walk_order(folder):
    """The *.onnx files below folder, each folder's entries in byte order."""
    found = []
    for name in sorted(os.listdir(folder), key=lambda n: n.encode()):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            found += [name + "/" + rel for rel in walk_order(path)]
        elif name.endswith(".onnx"):
            found.append(name)
    return found


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree(folder):
    """Every file below folder: relative path -> sha256."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, folder)] = sha256(path)
    return out


def normalised_report(path, out_dir):
    """The report without what may differ between runs: times, and the
    output folder's name."""
    with open(path) as f:
        doc = json.load(f)
    doc["totals"].pop("ms")
    for m in doc["models"]:
        m.pop("ms")
        m.pop("timings_ms")
        if m["output"]:
            # Written relative to the run's folder, out_dir's parent.
            where = os.path.join(os.path.dirname(out_dir), m["output"]["path"])
            m["output"]["path"] = os.path.relpath(where, out_dir)
        if m["check"] and m["check"]["input_probe"]:
            m["check"]["input_probe"].pop("ms")
    return doc


def without_times(stderr):
    return [RE_TIME.sub("", line) for line in stderr.splitlines()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("multi"))


@pytest.fixture(scope="module")
def fold_runs(bnfold, folder):
    """bnfold -r -O OUT --json with -j 1 and -j 4, run in folder's parent."""
    root = os.path.dirname(str(folder))
    runs = {}
    for j in (1, 4):
        out = "out%d" % j
        p = C.run(bnfold, ["-j", str(j), "-r", "-O", out, "--json", "report%d.json" % j,
                           "models"], cwd=root)
        runs[j] = (p, os.path.join(root, out), os.path.join(root, "report%d.json" % j))
    return root, runs


def test_the_folder_has_twenty_models(folder):
    assert len(walk_order(str(folder))) == N_MODELS == 20


def test_j1_and_j4_write_the_same_files_and_reports(fold_runs):
    root, runs = fold_runs
    (p1, out1, rep1), (p4, out4, rep4) = runs[1], runs[4]
    assert p1.returncode == 2, C.describe(p1)
    assert p4.returncode == 2, C.describe(p4)
    files1, files4 = tree(out1), tree(out4)
    assert files1 == files4
    written = set(FOLDABLE) | set(UNCHANGED) | {TRAINING}
    assert set(files1) == written, "missing or partial outputs: %s" % (set(files1) ^ written)
    assert normalised_report(rep1, out1) == normalised_report(rep4, out4)
    # The human lines too, times aside: nothing depends on -j.
    assert without_times(p1.stderr) == without_times(p4.stderr)


def test_each_output_is_what_the_one_model_form_writes(bnfold, fold_runs, tmp_path):
    root, runs = fold_runs
    _, out, _ = runs[4]
    for name in list(FOLDABLE) + list(UNCHANGED) + [TRAINING]:
        single = tmp_path / name.replace("/", "_")
        p = C.run(bnfold, [os.path.join(root, "models", name), "-o", str(single)])
        assert p.returncode == 0, C.describe(p)
        assert sha256(os.path.join(out, name)) == sha256(str(single)), name


def test_outputs_fold_what_the_manifest_says(fold_runs):
    _, runs = fold_runs
    _, out, _ = runs[1]
    for name, fixture in list(FOLDABLE.items()) + list(UNCHANGED.items()):
        model = onnx.load(os.path.join(out, name))
        onnx.checker.check_model(model)
        expect = MANIFEST[fixture]
        bns = sum(1 for n in model.graph.node if n.op_type == "BatchNormalization")
        if name == "if_subgraph.onnx":
            continue  # its BatchNormalization nodes live in the If's branches
        assert bns == expect["bn_total"] - expect["folded"], name


def test_report_lists_every_model_in_walk_order_with_its_fate(folder, fold_runs):
    _, runs = fold_runs
    _, out, rep = runs[4]
    with open(rep) as f:
        doc = json.load(f)
    assert doc["schema"] == 2 and doc["tool"] == "bnfold" and doc["mode"] == "fold"
    order = ["models/" + rel for rel in walk_order(str(folder))]
    assert [m["input"]["path"] for m in doc["models"]] == order
    by_path = {m["input"]["path"]: m for m in doc["models"]}
    for name, fixture in FOLDABLE.items():
        m = by_path["models/" + name]
        expect = MANIFEST[fixture]
        assert (m["status"], m["exit_code"]) == ("verified", 0), name
        assert m["summary"]["folded"] == expect["folded"], name
        assert m["summary"]["batchnorms"] == expect["bn_total"], name
        assert m["output"]["path"] == os.path.join(os.path.basename(out), name)
    for name in UNCHANGED:
        assert by_path["models/" + name]["status"] == "unchanged", name
    training = by_path["models/" + TRAINING]
    assert training["status"] == "unchanged" and training["exit_code"] == 0
    assert [b["reason"] for b in training["batchnorms"]] == ["training-mode"]
    broken = by_path["models/" + MALFORMED]
    assert broken["status"] == "error" and broken["exit_code"] == 2
    assert MALFORMED in broken["error"] and broken["output"] is None
    failed = by_path["models/" + CHECK_FAILS]
    assert failed["status"] == "check-failed" and failed["exit_code"] == 1
    assert failed["output"] is None and failed["check"]["pass"] is False
    t = doc["totals"]
    assert t["models"] == 20 and t["verified"] == len(FOLDABLE)
    assert t["unchanged"] == len(UNCHANGED) + 1
    assert t["check-failed"] == 1 and t["error"] == 1 and doc["exit_code"] == 2
    assert t["folded"] == sum(MANIFEST[f]["folded"] for f in FOLDABLE.values()) + 1


def test_every_model_has_one_summary_line_and_failures_name_their_file(folder, fold_runs):
    _, runs = fold_runs
    p, _, _ = runs[1]
    lines = p.stderr.splitlines()
    for rel in walk_order(str(folder)):
        path = "models/" + rel
        summary = [ln for ln in lines if ln.startswith("bnfold: %s: " % path) and
                   RE_TIME.search(ln)]
        assert len(summary) == 1, (path, p.stderr)
    assert re.search(r"^bnfold: models/broken\.onnx: error: not a valid ONNX model", p.stderr,
                     re.M), p.stderr
    assert re.search(r"^bnfold: models/fp16/subnormal_weights\.onnx: folded 1 of 1, check "
                     r"failed, nothing written", p.stderr, re.M), p.stderr
    # The failed check's own figures come under the model's name.
    assert re.search(r"^bnfold: models/fp16/subnormal_weights\.onnx: output 'y': .*FAILED",
                     p.stderr, re.M), p.stderr
    # What stayed, with the manifest's reasons, on the model's one line.
    for name, fixture in list(UNCHANGED.items()) + [(TRAINING, "guard_training_mode14.onnx")]:
        reasons = sorted(MANIFEST[fixture]["kept"].values())
        kept = " (kept: %s)" % ", ".join("1 " + r for r in reasons) if reasons else ""
        expect = MANIFEST[fixture]
        assert re.search(r"^bnfold: models/%s: folded 0 of %d%s, unchanged \(" % (
            re.escape(name), expect["bn_total"], re.escape(kept)), p.stderr, re.M), name
    assert lines[-1].startswith("bnfold: 20 models: 15 verified, 3 unchanged, 1 check failed, "
                                "1 error; folded"), lines[-1]
    assert "\r" not in p.stderr and "\033" not in p.stderr  # not a terminal: no progress


def test_check_over_the_folder(bnfold, folder):
    root = os.path.dirname(str(folder))
    docs = []
    for j in (1, 4):
        p = C.run(bnfold, ["--check", "-r", "-j", str(j), "--json", "-", "models"], cwd=root)
        assert p.returncode == 2, C.describe(p)
        docs.append(p)
    reports = []
    for p in docs:
        doc = json.loads(p.stdout)
        doc["totals"].pop("ms")
        for m in doc["models"]:
            m.pop("ms")
            m.pop("timings_ms")
        reports.append(doc)
    assert reports[0] == reports[1]
    assert without_times(docs[0].stderr) == without_times(docs[1].stderr)
    doc = reports[0]
    assert doc["mode"] == "check"
    by_path = {m["input"]["path"]: m for m in doc["models"]}
    for name, fixture in FOLDABLE.items():
        m = by_path["models/" + name]
        codes = [f["code"] for f in m["findings"]]
        assert m["exit_code"] == 1 and "bn-unfolded" in codes, name
        assert m["summary"]["foldable"] == MANIFEST[fixture]["folded"], name
    assert by_path["models/no_bn.onnx"]["exit_code"] == 0
    training = by_path["models/" + TRAINING]
    assert "bn-training-mode" in [f["code"] for f in training["findings"]]
    assert by_path["models/" + MALFORMED]["exit_code"] == 2
    assert not os.path.exists(os.path.join(root, "models", "out"))
    assert re.search(r"^bnfold: 20 models: \d+ passed, \d+ with findings, 1 error; foldable",
                     docs[0].stderr, re.M), docs[0].stderr


def test_exit_status_is_the_worst(bnfold, folder, tmp_path):
    models = str(folder)
    ok = [os.path.join(models, n) for n in ("example.onnx", "no_bn.onnx")]
    p = C.run(bnfold, ["-O", str(tmp_path / "a")] + ok)
    assert p.returncode == 0, C.describe(p)
    p = C.run(bnfold, ["-O", str(tmp_path / "b")] + ok + [os.path.join(models, CHECK_FAILS)])
    assert p.returncode == 1, C.describe(p)
    p = C.run(bnfold, ["-O", str(tmp_path / "c"), os.path.join(models, MALFORMED)] + ok +
              [os.path.join(models, CHECK_FAILS)])
    assert p.returncode == 2, C.describe(p)
    assert sorted(os.listdir(str(tmp_path / "c"))) == ["example.onnx", "no_bn.onnx"]


def test_quiet_keeps_only_the_models_that_failed(bnfold, folder, tmp_path):
    p = C.run(bnfold, ["-q", "-r", "-n", str(folder)])
    assert p.returncode == 2
    summaries = [ln for ln in p.stderr.splitlines() if RE_TIME.search(ln)]
    assert len(summaries) == 2, p.stderr
    assert "broken.onnx: error" in p.stderr and "subnormal_weights.onnx: folded" in p.stderr
    assert " models: " not in p.stderr


def test_suffix_writes_beside_and_a_rerun_skips_earlier_outputs(bnfold, tmp_path):
    for name in ("a.onnx", "sub/b.onnx"):
        os.makedirs(os.path.dirname(str(tmp_path / name)), exist_ok=True)
        shutil.copy(os.path.join(C.FIXTURES, "example.onnx"), str(tmp_path / name))
    for _ in range(2):
        p = C.run(bnfold, ["--suffix", ".folded", "-r", str(tmp_path)])
        assert p.returncode == 0, C.describe(p)
        assert len(re.findall(r": folded 4 of 4, verified", p.stderr)) == 2, p.stderr
    assert sorted(tree(str(tmp_path))) == ["a.folded.onnx", "a.onnx", "sub/b.folded.onnx",
                                           "sub/b.onnx"]
    single = tmp_path / "single.onnx"
    assert C.run(bnfold, [str(tmp_path / "a.onnx"), "-o", str(single)]).returncode == 0
    assert sha256(str(single)) == sha256(str(tmp_path / "a.folded.onnx"))


def test_external_data_goes_beside_each_output(bnfold, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("one", "two"):
        model = onnx.load(os.path.join(C.FIXTURES, "example.onnx"))
        onnx.save_model(model, str(src / (name + ".onnx")), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=name + ".bin", size_threshold=0)
    out = tmp_path / "out"
    # Tensors of 64 bytes or more go to the data file (example's are small).
    p = C.run(bnfold, ["--external-threshold", "64", "-O", str(out), str(src / "one.onnx"),
                       str(src / "two.onnx")])
    assert p.returncode == 0, C.describe(p)
    assert sorted(os.listdir(str(out))) == ["one.onnx", "one.onnx.data", "two.onnx",
                                            "two.onnx.data"]
    single = tmp_path / "single"
    single.mkdir()
    p = C.run(bnfold, ["--external-threshold", "64", str(src / "one.onnx"), "-o",
                       str(single / "one.onnx")])
    assert p.returncode == 0, C.describe(p)
    for name in ("one.onnx", "one.onnx.data"):
        assert sha256(str(out / name)) == sha256(str(single / name)), name
    model = onnx.load(str(out / "two.onnx"))  # reads two.onnx.data
    onnx.checker.check_model(model)


@pytest.mark.parametrize("args,fragment", [
    (["-o", "x.onnx", "a.onnx", "b.onnx"], "-o names one output file"),
    (["a.onnx", "b.onnx"], "several models need -O DIR or --suffix SUFFIX"),
    (["-O", "out", "a.onnx", "sub/a.onnx"], "would both be written to 'out/a.onnx'"),
    (["-O", ".", "a.onnx"], "'a.onnx' would be written over itself"),
    (["-O", "sub", "b.onnx", "sub/b.onnx"], "would be written over the input 'sub/b.onnx'"),
    (["--check", "sub"], None),  # the one-model form: a folder is unreadable (exit 2)
    (["--check", "a.onnx", "sub"], "'sub' is a folder: give -r"),
    (["-O", "out", "--external-data=data.bin", "a.onnx", "b.onnx"], "--external-data=FILE"),
    (["--check", "-", "a.onnx"], "'-' (standard input) is for one model"),
    (["--suffix", "x/y", "a.onnx"], "--suffix takes a part of a file name"),
    (["--run", "-r", "a.onnx", "--output-dir", "out"], "--suffix and -r apply to folding"),
])
def test_ambiguous_combinations_are_usage_errors(bnfold, tmp_path, args, fragment):
    for name in ("a.onnx", "b.onnx", "sub/a.onnx", "sub/b.onnx"):
        os.makedirs(os.path.dirname(str(tmp_path / name)), exist_ok=True)
        shutil.copy(os.path.join(C.FIXTURES, "example.onnx"), str(tmp_path / name))
    before = tree(str(tmp_path))
    p = C.run(bnfold, args, cwd=str(tmp_path))
    assert p.returncode == 2, C.describe(p)
    if fragment:
        lines = p.stderr.splitlines()
        assert lines == [lines[0], "Try 'bnfold --help'."], p.stderr
        assert lines[0].startswith("bnfold: ") and fragment in lines[0], p.stderr
    assert tree(str(tmp_path)) == before, "written after a usage error"


def test_an_empty_folder_is_an_error(bnfold, tmp_path):
    (tmp_path / "empty").mkdir()
    p = C.run(bnfold, ["--check", "-r", str(tmp_path / "empty")])
    assert p.returncode == 2
    assert p.stderr.strip() == "bnfold: no *.onnx file in folder '%s'" % (tmp_path / "empty")


def test_models_at_once_follow_cores_and_memory(bnfold, tmp_path):
    """-v says how many run at once: min(-j, models, memory / --check-memory)."""
    with open("/proc/meminfo") as f:
        total = int(re.search(r"MemTotal:\s+(\d+) kB", f.read()).group(1)) * 1024
    models = [os.path.join(C.FIXTURES, n) for n in ("example.onnx", "no_bn.onnx",
                                                    "gemm_bn.onnx")]
    cases = [(["-j", "2"], 2), (["-j", "8"], 3),
             (["-j", "8", "--check-memory", str(total // 2 + 1)], 1),
             (["-j", "8", "--check-memory", str(total // 2 - 4096)], 2)]
    for args, want in cases:
        p = C.run(bnfold, ["-v", "-n"] + args + models)
        assert p.returncode == 0, C.describe(p)
        m = re.search(r"^bnfold: 3 models, up to (\d+) at once", p.stderr, re.M)
        assert m and int(m.group(1)) == want, (args, p.stderr[:400])


def slow_model(path):
    """A Conv + BN whose check takes seconds with many samples."""
    rng = np.random.default_rng(5)
    c = 32
    inits = [numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.ones(c, np.float32), "scale"),
             numpy_helper.from_array(np.full(c, 0.1, np.float32), "b"),
             numpy_helper.from_array(np.full(c, 0.2, np.float32), "mean"),
             numpy_helper.from_array(np.full(c, 2.0, np.float32), "var")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "b", "mean", "var"], ["y"])]
    graph = helper.make_graph(
        nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 96, 96])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 96, 96])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), path)


def workers_of(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def alive(pid):
    """A process that exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_worker_ends_only_its_model(bnfold, tmp_path):
    slow_model(str(tmp_path / "slow.onnx"))
    shutil.copy(os.path.join(C.FIXTURES, "example.onnx"), str(tmp_path / "fast.onnx"))
    out = tmp_path / "out"
    p = subprocess.Popen([bnfold, "-j", "2", "--samples", "1000", "-O", str(out),
                          str(tmp_path / "slow.onnx"), str(tmp_path / "fast.onnx")],
                         stderr=subprocess.PIPE, text=True)
    try:
        # The larger file starts first; once fast.onnx is written, the
        # worker left is slow.onnx's.
        assert wait_for(lambda: os.path.exists(str(out / "fast.onnx"))), "fast.onnx not written"
        assert wait_for(lambda: len(workers_of(p.pid)) == 1)
        os.kill(workers_of(p.pid)[0], signal.SIGKILL)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 2, err
    assert re.search(r"^bnfold: \S*slow\.onnx: error: the worker process ended by signal 9",
                     err, re.M), err
    assert re.search(r"^bnfold: \S*fast\.onnx: folded 4 of 4, verified", err, re.M), err
    assert not os.path.exists(str(out / "slow.onnx"))


def read_pty(fd, until, timeout=60):
    text, end = b"", time.time() + timeout
    while time.time() < end and until not in text:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            text += data
    return text


def test_progress_on_a_terminal_and_sigterm_reaches_the_workers(bnfold, tmp_path):
    slow_model(str(tmp_path / "slow.onnx"))
    shutil.copy(os.path.join(C.FIXTURES, "example.onnx"), str(tmp_path / "fast.onnx"))
    out = tmp_path / "out"
    leader, follower = pty.openpty()
    p = subprocess.Popen([bnfold, "-j", "2", "--samples", "1000", "-O", str(out),
                          str(tmp_path / "slow.onnx"), str(tmp_path / "fast.onnx")],
                         stderr=follower, stdout=subprocess.DEVNULL)
    os.close(follower)
    try:
        text = read_pty(leader, b"1 of 2 models done; running ")
        assert b"\r\033[Kbnfold: 1 of 2 models done; running " in text, text
        worker = workers_of(p.pid)
        assert len(worker) == 1
        # The temporary file the check writes to exists while it runs.
        assert wait_for(lambda: any(n.startswith(".bnfold-") for n in os.listdir(str(out))))
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == -signal.SIGTERM
        assert wait_for(lambda: not alive(worker[0]), 30), "the worker outlived its parent"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(leader)
    assert sorted(os.listdir(str(out))) == ["fast.onnx"], "a temporary file was left"
