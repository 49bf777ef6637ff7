"""External tensor data (issue 6 and issue 7): models saved by onnx with
save_as_external_data fold, pass the ONNX checker and compute in
onnxruntime what the original does; --external-data=inline/keep/FILE each
work; unsafe locations, bad offsets and stdin are refused with exit 2 and
nothing written; peak memory on a ~200 MB all-external model stays bounded.
"""

import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import conftest as C

RNG = np.random.default_rng(7)


def small_model():
    """Conv -> BN -> Relu -> Mul -> Gemm -> BN: two folds, one constant that
    stays, tensors of several sizes."""
    rng = np.random.default_rng(7)  # the same model on every call
    c_in, c, n = 3, 8, 5
    w = rng.standard_normal((c, c_in, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    for prefix, k in (("bn1", c), ("bn2", n)):
        inits += [numpy_helper.from_array(rng.uniform(0.5, 2, k).astype(np.float32), prefix + "_s"),
                  numpy_helper.from_array(rng.standard_normal(k).astype(np.float32), prefix + "_b"),
                  numpy_helper.from_array(rng.standard_normal(k).astype(np.float32), prefix + "_m"),
                  numpy_helper.from_array(rng.uniform(0.5, 2, k).astype(np.float32), prefix + "_v")]
    inits.append(numpy_helper.from_array(
        rng.standard_normal((c * 4 * 4, n)).astype(np.float32), "G"))
    inits.append(numpy_helper.from_array(
        rng.uniform(0.5, 1.5, (1, c, 4, 4)).astype(np.float32), "gain"))
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["y"],
                         name="bn1"),
        helper.make_node("Relu", ["y"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "gain"], ["q"], name="gain"),
        helper.make_node("Flatten", ["q"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "G"], ["g"], name="gemm"),
        helper.make_node("BatchNormalization", ["g", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["out"],
                         name="bn2"),
    ]
    graph = helper.make_graph(
        nodes, "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def save_external(model, folder, name="model.onnx", location="weights.bin"):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=location, size_threshold=0)
    return path


def external_locations(path):
    """{tensor name: location} of the external tensors of the model file."""
    m = onnx.load(path, load_external_data=False)
    out = {}
    for t in m.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            out[t.name] = {e.key: e.value for e in t.external_data}["location"]
    return out


def ort_outputs(path, x):
    ortutil = C_ort()
    return list(ortutil.run_ort(path, {"x": x}).values())


def C_ort():
    from test_fold import ort_module
    return ort_module()


@pytest.fixture
def ext_model(tmp_path):
    """The small model, all tensors external in weights.bin, in tmp/in/."""
    return save_external(small_model(), str(tmp_path / "in"))


def check_equal_in_ort(orig, folded):
    onnx.checker.check_model(folded, full_check=True)
    x = RNG.standard_normal((1, 3, 4, 4)).astype(np.float32)
    a, b = ort_outputs(orig, x), ort_outputs(folded, x)
    for u, v in zip(a, b):
        np.testing.assert_allclose(v, u, rtol=1e-4, atol=1e-5)


def test_default_writes_data_file_next_to_output(bnfold, ext_model, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = str(out_dir / "fused.onnx")
    proc = C.run(bnfold, [ext_model, "-o", out])
    assert proc.returncode == 0, C.describe(proc)
    assert "folded 2 of 2" in proc.stderr
    locs = external_locations(out)
    assert locs, "the output of an external-data input keeps external data"
    assert set(locs.values()) == {"fused.onnx.data"}
    assert sorted(os.listdir(out_dir)) == ["fused.onnx", "fused.onnx.data"]
    check_equal_in_ort(ext_model, out)


def test_dry_run_counts_external_data(bnfold, ext_model, tmp_path):
    """-n reports the size the output would have, its data file included
    (it used to count the model file alone): within a few hundred bytes of
    what the real run writes, which moves tensors under the threshold
    inline."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dry = C.run(bnfold, [ext_model, "-n", "--json", "-"])
    assert dry.returncode == 0, C.describe(dry)
    proc = C.run(bnfold, [ext_model, "-o", str(out_dir / "m.onnx")])
    assert proc.returncode == 0, C.describe(proc)
    written = sum(os.path.getsize(out_dir / n) for n in os.listdir(out_dir))
    data = os.path.getsize(os.path.join(os.path.dirname(ext_model), "weights.bin"))
    m = re.search(r"-> ([0-9.]+) (B|kB)", dry.stderr)
    assert m, dry.stderr
    reported = float(m.group(1)) * (1000 if m.group(2) == "kB" else 1)
    assert reported >= data, "the dry run left the data file out: %s" % dry.stderr
    assert abs(reported - written) <= max(300, 0.05 * written), (reported, written)


def test_external_data_inline(bnfold, ext_model, tmp_path):
    out = str(tmp_path / "inline.onnx")
    proc = C.run(bnfold, [ext_model, "-o", out, "--external-data=inline"])
    assert proc.returncode == 0, C.describe(proc)
    assert external_locations(out) == {}
    assert sorted(os.listdir(tmp_path)) == ["in", "inline.onnx"]
    check_equal_in_ort(ext_model, out)


def test_external_data_file_and_threshold(bnfold, ext_model, tmp_path):
    out = str(tmp_path / "in" / "f.onnx")
    os.makedirs(tmp_path / "in" / "w", exist_ok=True)
    proc = C.run(bnfold, [ext_model, "-o", out, "--external-data=w/f.bin",
                          "--external-threshold", "0"])
    assert proc.returncode == 0, C.describe(proc)
    locs = external_locations(out)
    m = onnx.load(out, load_external_data=False)
    assert set(locs.values()) == {"w/f.bin"}
    assert len(locs) == len(m.graph.initializer), "threshold 0 puts every tensor outside"
    check_equal_in_ort(ext_model, out)
    # offsets of page-sized tensors are aligned for mapping
    for t in m.graph.initializer:
        e = {x.key: x.value for x in t.external_data}
        if int(e["length"]) >= 4096:
            assert int(e["offset"]) % 4096 == 0


def test_external_data_keep_references_input_data(bnfold, ext_model, tmp_path):
    out = str(tmp_path / "in" / "kept.onnx")
    before = os.path.getsize(tmp_path / "in" / "weights.bin")
    proc = C.run(bnfold, [ext_model, "-o", out, "--external-data=keep",
                          "--external-threshold", "0"])
    assert proc.returncode == 0, C.describe(proc)
    locs = external_locations(out)
    # the untouched Mul constant is the input's data; folded ones are new
    assert locs["gain"] == "weights.bin"
    assert set(locs.values()) == {"weights.bin", "kept.onnx.data"}
    assert os.path.getsize(tmp_path / "in" / "weights.bin") == before
    check_equal_in_ort(ext_model, out)


def test_external_folded_values_match_numpy(bnfold, ext_model, tmp_path):
    """The folded Conv weight is W * s per output channel (computed here)."""
    m = small_model()
    t = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    s = t["bn1_s"].astype(np.float64) / np.sqrt(t["bn1_v"].astype(np.float64) + 1e-5)
    want = (t["W"].astype(np.float64) * s[:, None, None, None]).astype(np.float32)
    out = str(tmp_path / "v.onnx")
    proc = C.run(bnfold, [ext_model, "-o", out])
    assert proc.returncode == 0, C.describe(proc)
    folded = onnx.load(out)  # loads the external data next to it
    conv = [n for n in folded.graph.node if n.op_type == "Conv"][0]
    got = numpy_helper.to_array([i for i in folded.graph.initializer
                                 if i.name == conv.input[1]][0])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def rewrite_location(path, tensor, **entries):
    m = onnx.load(path, load_external_data=False)
    for t in m.graph.initializer:
        if t.name == tensor:
            for e in t.external_data:
                if e.key in entries:
                    e.value = str(entries.pop(e.key))
            for k, v in entries.items():
                t.external_data.add(key=k, value=str(v))
    onnx.save(m, path)


def assert_refused(bnfold, args, out_dir, *needles):
    before = sorted(os.listdir(out_dir))
    proc = C.run(bnfold, args)
    assert proc.returncode == 2, C.describe(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], proc.stderr
    assert sorted(os.listdir(out_dir)) == before, "nothing may be written"
    assert not [f for f in os.listdir(out_dir) if f.startswith(".bnfold-")]


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_location_outside_model_folder_is_refused(bnfold, ext_model, tmp_path, kind):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(4096))
    folder = tmp_path / "in"
    if kind == "absolute":
        loc = str(secret)
    elif kind == "dotdot":
        loc = "../secret.bin"
    else:
        os.symlink(str(secret), str(folder / "link.bin"))
        loc = "link.bin"
    rewrite_location(ext_model, "W", location=loc, offset=0)
    out = str(folder / "o.onnx")
    assert_refused(bnfold, [ext_model, "-o", out], str(folder), "'W'", loc)


def test_dotdot_that_stays_inside_is_accepted(bnfold, ext_model, tmp_path):
    os.makedirs(tmp_path / "in" / "sub")
    rewrite_location(ext_model, "W", location="sub/../weights.bin")
    proc = C.run(bnfold, [ext_model, "-n"])
    assert proc.returncode == 0, C.describe(proc)


@pytest.mark.parametrize("entries", [{"offset": 10 ** 9}, {"length": 10 ** 9},
                                     {"offset": 8, "length": 10 ** 7}])
def test_offset_length_beyond_eof_is_refused(bnfold, ext_model, tmp_path, entries):
    rewrite_location(ext_model, "W", **entries)
    out = str(tmp_path / "in" / "o.onnx")
    assert_refused(bnfold, [ext_model, "-o", out], str(tmp_path / "in"), "'W'", "beyond the end")


def test_stdin_with_external_data_is_refused(bnfold, ext_model, tmp_path):
    with open(ext_model, "rb") as f:
        data = f.read()
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    before = sorted(os.listdir(out_dir))
    proc = C.run(bnfold, ["-", "-o", str(out_dir / "o.onnx")], stdin=data)
    assert proc.returncode == 2, C.describe(proc)
    assert "standard input" in proc.stderr and "weights.bin" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(out_dir)) == before


def test_stdout_needs_inline(bnfold, ext_model):
    proc = C.run(bnfold, [ext_model, "-o", "-"])
    assert proc.returncode == 2, C.describe(proc)
    assert "--external-data=inline" in proc.stderr and proc.stdout == b""
    proc = C.run(bnfold, [ext_model, "-o", "-", "--external-data=inline"])
    assert proc.returncode == 0, C.describe(proc)
    m = onnx.load_from_string(proc.stdout)
    onnx.checker.check_model(m, full_check=True)


def test_check_memory_budget_skips_whole_graph(bnfold, ext_model):
    proc = C.run(bnfold, [ext_model, "-n", "--check-memory", "1K"])
    assert proc.returncode == 0, C.describe(proc)
    assert re.search(r"whole-graph check skipped: .*--check-memory", proc.stderr), proc.stderr
    assert "(per fold, " in proc.stderr
    proc = C.run(bnfold, [ext_model, "-n", "--check-memory", "1G"])
    assert proc.returncode == 0 and "(graph, " in proc.stderr, C.describe(proc)


# ---------------------------------------------------------------------------
# bounded memory on a large model

LAYERS, CH = 200, 512       # 200 Conv 1x1 of 512x512 float32: 1 MiB each


def write_large_model(folder):
    """The bench's generator (bench/gen_large_external.py): a chain of
    Conv+BN with every tensor in one data file, written tensor by tensor."""
    sys.path.insert(0, os.path.join(C.REPO, "bench"))
    try:
        import gen_large_external
    finally:
        sys.path.pop(0)
    return gen_large_external.write_chain_model(folder, "big", LAYERS, CH, seed=3)


def test_peak_memory_on_large_external_model(bnfold, tmp_path):
    path, data_bytes, largest = write_large_model(str(tmp_path))
    out = str(tmp_path / "o" / "big-fused.onnx")
    os.makedirs(os.path.dirname(out))
    # The whole-graph check would hold every weight of both models: budget
    # it away, so that the per-fold check alone runs.
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", bnfold, path, "-o", out,
                           "--check-memory", "16M", "-j", "1", "--samples", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "folded %d of %d" % (LAYERS, LAYERS) in err
    peak_kib = int(err.strip().splitlines()[-1])
    bound = 0.1 * data_bytes + largest
    with open(bnfold, "rb") as f:
        sanitized = b"__asan_init" in f.read()  # its shadow memory is not ours
    if not sanitized:
        assert peak_kib * 1024 < bound, "peak RSS %d KiB, bound %d KiB" % (peak_kib,
                                                                          bound // 1024)
    # The output is complete: checker (with its data) and the same size.
    onnx.checker.check_model(out, full_check=True)
    assert os.path.getsize(out + ".data") >= LAYERS * largest


def test_check_lints_external_parameters(bnfold, tmp_path):
    """--check reads BatchNormalization parameters kept in a data file: the
    findings are those of the same model stored inline."""
    model = onnx.load(os.path.join(C.FIXTURES, "example.onnx"))
    inline = C.run(bnfold, ["--check", os.path.join(C.FIXTURES, "example.onnx")])
    path = save_external(model, str(tmp_path / "ext"))
    ext = C.run(bnfold, ["--check", path])
    assert inline.returncode == 1, C.describe(inline)
    assert ext.returncode == 1, C.describe(ext)
    findings = [l for l in inline.stderr.splitlines() if "bn-unfolded" in l]
    assert len(findings) == 4
    assert [l for l in ext.stderr.splitlines() if "bn-unfolded" in l] == findings
