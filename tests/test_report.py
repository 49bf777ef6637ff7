"""The --json report (schema 1, bnfold(1) JSON REPORT), read with Python's
json module and with jq; its hashes against hashlib and sha256sum, its
counts against onnx; string escaping of awkward node names; and the -v table.
"""

import hashlib
import json
import os
import shutil
import subprocess

import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper
import numpy as np

import conftest as C

FOLDABLE = os.path.join(C.FIXTURES, "chain_conv_bn.onnx")
LINT_DIR = os.path.join(C.FIXTURES, "lint")
TOP_KEYS = {"schema", "tool", "version", "mode", "input", "output", "counts", "summary",
            "batchnorms", "train_mode", "check", "findings", "timings_ms", "exit_code"}
PHASES = {"read", "train_mode", "fold", "check", "lint", "write"}


def jq(args, path):
    if not shutil.which("jq"):
        pytest.fail("jq is not installed (apt-get install jq)", pytrace=False)
    return subprocess.run(["jq"] + args + [path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def counts(model):
    graphs = [g for g, _ in C.gen.all_graphs(model.graph)]
    return sum(len(g.node) for g in graphs), sum(len(g.initializer) for g in graphs)


def test_fold_report(bnfold, tmp_path):
    out, rep = tmp_path / "folded.onnx", tmp_path / "report.json"
    p = C.run(bnfold, ["--json", str(rep), FOLDABLE, "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    with open(rep) as f:
        r = json.load(f)
    assert set(r) == TOP_KEYS
    assert (r["schema"], r["tool"], r["mode"], r["exit_code"]) == (1, "bnfold", "fold", 0)
    assert r["input"] == {"path": FOLDABLE, "size": os.path.getsize(FOLDABLE),
                          "sha256": C.sha256(FOLDABLE)}
    assert r["output"] == {"path": str(out), "size": os.path.getsize(out),
                           "sha256": C.sha256(str(out))}
    orig, folded = onnx.load(FOLDABLE), onnx.load(str(out))
    n0, i0 = counts(orig)
    n1, i1 = counts(folded)
    assert r["counts"] == {"before": {"nodes": n0, "initializers": i0},
                           "after": {"nodes": n1, "initializers": i1}}
    bns = C.bn_names(orig)
    assert sorted(b["name"] for b in r["batchnorms"]) == sorted(bns)
    for b in r["batchnorms"]:
        assert b["fate"] == "folded" and b["fold_kind"] == "conv" and b["reason"] is None
        assert b["target"]["op"] == "Conv" and b["max_scale"] > 0
    assert r["summary"]["folded"] == len(bns) == r["summary"]["by_kind"]["conv"]
    assert r["summary"]["nodes_removed"] == n0 - n1
    assert r["train_mode"] is None and r["findings"] is None
    assert r["check"]["pass"] is True
    assert [o["name"] for o in r["check"]["outputs"]] == [o.name for o in orig.graph.output]
    assert len(r["check"]["folds"]) == len(bns)
    assert set(r["timings_ms"]) == PHASES
    assert r["timings_ms"]["lint"] is None and r["timings_ms"]["fold"] >= 0
    # The same document through jq.
    q = jq(["-e", ".schema == 1 and .exit_code == 0 and (.batchnorms | length) == %d"
            % len(bns)], str(rep))
    assert q.returncode == 0, q.stderr
    q = jq(["-r", ".output.sha256"], str(rep))
    want = subprocess.run(["sha256sum", str(out)], stdout=subprocess.PIPE).stdout.split()[0]
    assert q.stdout.strip() == want


@pytest.mark.parametrize("name", ["bn_training_mode.onnx", "fp16_overflow.onnx",
                                  "clean_folded.onnx"])
def test_check_report_on_stdout(bnfold, name, tmp_path):
    path = os.path.join(LINT_DIR, name)
    with open(os.path.join(LINT_DIR, "expected.json")) as f:
        want = json.load(f)[name]["codes"]
    p = C.run(bnfold, ["--check", "--json", "-", "--warn-only", "bn-zero-epsilon", path])
    r = json.loads(p.stdout.decode())
    assert r["mode"] == "check" and r["output"] is None
    assert sorted(x["code"] for x in r["findings"]) == want
    for x in r["findings"]:
        assert x["level"] == ("warning" if x["code"] == "bn-zero-epsilon" else "error")
        assert x["node"] and x["message"]
    errors = [x for x in r["findings"] if x["level"] == "error"]
    assert p.returncode == r["exit_code"] == (1 if errors else 0), C.describe(p)
    report = tmp_path / "r.json"
    report.write_bytes(p.stdout)
    q = jq(["-r", "[.findings[].code] | sort | join(\",\")"], str(report))
    assert q.stdout.decode().strip() == ",".join(want)


def test_ignored_codes_are_not_in_the_report(bnfold):
    p = C.run(bnfold, ["--check", "--json", "-", "--ignore", "bn-unfolded",
                       os.path.join(LINT_DIR, "bn_unfolded.onnx")])
    r = json.loads(p.stdout.decode())
    assert p.returncode == 0 and r["findings"] == [] and r["exit_code"] == 0


def test_train_mode_in_report(bnfold, tmp_path):
    path = os.path.join(C.FIXTURES, "torch", "training_mode.onnx")
    p = C.run(bnfold, ["--train-mode=eval", "--json", "-", path, "-o", str(tmp_path / "o.onnx")])
    assert p.returncode == 0, C.describe(p)
    r = json.loads(p.stdout.decode())
    assert r["summary"]["converted_to_eval"] == 2
    assert [t["converted"] for t in r["train_mode"]] == [True, True]
    assert all(b["fate"] == "folded" for b in r["batchnorms"])


def test_report_of_a_failed_run(bnfold, tmp_path):
    rep = tmp_path / "r.json"
    p = C.run(bnfold, ["--check", "--json", str(rep), str(tmp_path / "missing.onnx")])
    assert p.returncode == 2, C.describe(p)
    r = json.loads(rep.read_text())
    assert r["exit_code"] == 2 and r["input"]["sha256"] is None


def test_json_and_model_cannot_share_stdout(bnfold):
    p = C.run(bnfold, ["--json", "-", FOLDABLE, "-o", "-"])
    assert p.returncode == 2 and "standard output" in p.stderr, C.describe(p)
    assert p.stdout == b""


def test_json_with_run_is_a_usage_error(bnfold, tmp_path):
    p = C.run(bnfold, ["--run", FOLDABLE, "--output-dir", str(tmp_path), "--json", "-"])
    assert p.returncode == 2, C.describe(p)


def test_compare_json(bnfold, tmp_path):
    """--compare --json: the verdict, both files with their hashes, the
    check object of a fold report, and the exit code, for a candidate that
    computes the same (bnfold's own fold), one that does not (a weight
    moved by 0.5), one with other inputs, and one that cannot be read."""
    example = os.path.join(C.FIXTURES, "example.onnx")
    folded = str(tmp_path / "folded.onnx")
    assert C.run(bnfold, ["-q", example, "-o", folded]).returncode == 0
    model = onnx.load(folded)
    init = next(t for t in model.graph.initializer if t.name == "head.fc.weight")
    w = numpy_helper.to_array(init).copy()
    w[3, 5] += 0.5
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    wrong = str(tmp_path / "wrong.onnx")
    onnx.save(model, wrong)
    other = os.path.join(C.FIXTURES, "conv1d_bn.onnx")

    def compare(candidate):
        p = C.run(bnfold, ["--compare", example, candidate, "--json", "-"])
        r = json.loads(p.stdout)
        assert (r["schema"], r["tool"], r["mode"]) == (1, "bnfold", "compare")
        assert r["exit_code"] == p.returncode
        assert r["reference"]["path"] == example
        assert r["candidate"]["path"] == candidate
        return r

    def sha(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    r = compare(folded)
    assert (r["verdict"], r["exit_code"], r["error"]) == ("equal", 0, None)
    assert r["check"]["pass"] is True and r["check"]["whole_graph"] is True
    assert r["reference"]["sha256"] == sha(example)
    assert r["candidate"]["sha256"] == sha(folded)
    assert r["candidate"]["size"] == os.path.getsize(folded)
    r = compare(wrong)
    assert (r["verdict"], r["exit_code"]) == ("different", 1)
    assert r["check"]["pass"] is False
    assert [o["name"] for o in r["check"]["outputs"] if not o["pass"]] == ["logits"]
    r = compare(other)
    assert (r["verdict"], r["exit_code"], r["check"]) == ("not-comparable", 2, None)
    assert "input" in r["error"]
    r = compare(str(tmp_path / "missing.onnx"))
    assert (r["verdict"], r["exit_code"], r["check"]) == ("error", 2, None)
    assert "missing.onnx" in r["error"]


# ---------------------------------------------------------------------------
# escaping and hashing

AWKWARD = ['quote"d', "back\\slash", "new\nline", "tab\tand\x01ctl", "ünï©ødé ✓", "BADX"]


def awkward_model(path):
    """Conv -> BN pairs whose node names need escaping; "BADX" is patched to
    bytes that are not UTF-8 after saving."""
    rng = np.random.default_rng(3)
    nodes, inits, prev = [], [], "x"
    for k, name in enumerate(AWKWARD):
        w = numpy_helper.from_array(rng.standard_normal((2, 2, 1, 1)).astype(np.float32), "w%d" % k)
        inits.append(w)
        nodes.append(helper.make_node("Conv", [prev, w.name], ["c%d" % k], name="conv%d" % k))
        p = ["s%d" % k, "b%d" % k, "m%d" % k, "v%d" % k]
        for n, v in zip(p, (rng.uniform(0.5, 1.5, 2), rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2),
                            rng.uniform(0.5, 2, 2))):
            inits.append(numpy_helper.from_array(v.astype(np.float32), n))
        out = "y" if k == len(AWKWARD) - 1 else "r%d" % k
        nodes.append(helper.make_node("BatchNormalization", ["c%d" % k] + p, [out], name=name))
        prev = out
    g = helper.make_graph(nodes, "awkward", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 2, 3, 3])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [1, 2, 3, 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    data = m.SerializeToString()
    assert data.count(b"BADX") == 1
    with open(path, "wb") as f:
        f.write(data.replace(b"BADX", b"\xffAD\xfe"))


def test_awkward_names_are_escaped(bnfold, tmp_path):
    path = str(tmp_path / "awkward.onnx")
    awkward_model(path)
    rep = tmp_path / "r.json"
    p = C.run(bnfold, ["--check", "--json", str(rep), path])
    assert p.returncode == 1, C.describe(p)
    text = rep.read_bytes()
    text.decode("utf-8")  # valid UTF-8 whatever the names held
    r = json.loads(text)
    names = [x["node"] for x in r["findings"]]
    assert names[:5] == AWKWARD[:5]
    assert names[5] == "\ufffdAD\ufffd"
    assert jq(["-e", ".findings | length == 6"], str(rep)).returncode == 0


def test_sha256_over_block_boundaries(bnfold, tmp_path):
    # Models of 130 consecutive sizes cover every padding case of SHA-256
    # (message length mod 64 on both sides of 55/56 bytes).
    base = onnx.load(os.path.join(LINT_DIR, "clean_folded.onnx"))
    base.doc_string = ""
    size0 = len(base.SerializeToString())
    seen = set()
    for extra in range(0, 140):
        base.doc_string = "d" * extra
        data = base.SerializeToString()
        if len(data) in seen:
            continue
        seen.add(len(data))
        path = tmp_path / ("m%d.onnx" % extra)
        path.write_bytes(data)
        p = C.run(bnfold, ["--check", "-q", "--json", "-", str(path)])
        assert p.returncode == 0, C.describe(p)
        got = json.loads(p.stdout.decode())["input"]["sha256"]
        assert got == hashlib.sha256(data).hexdigest(), "size %d" % len(data)
    assert len({s % 64 for s in seen}) == 64 and min(seen) >= size0


def test_sha256_of_stdout_output(bnfold, tmp_path):
    rep = tmp_path / "r.json"
    with open(FOLDABLE, "rb") as f:
        p = C.run(bnfold, ["--json", str(rep), "-", "-o", "-"], stdin=f.read())
    assert p.returncode == 0, C.describe(p)
    r = json.loads(rep.read_text())
    assert r["output"]["sha256"] == hashlib.sha256(p.stdout).hexdigest()
    assert r["output"]["size"] == len(p.stdout)


# ---------------------------------------------------------------------------
# human output

def test_verbose_table(bnfold, tmp_path):
    path = os.path.join(C.FIXTURES, "example.onnx")
    p = C.run(bnfold, ["-v", path, "-o", str(tmp_path / "o.onnx")])
    assert p.returncode == 0, C.describe(p)
    lines = p.stderr.splitlines()
    assert all(ln.startswith("bnfold: ") for ln in lines), p.stderr
    lines = [ln[len("bnfold: "):] for ln in lines]
    head = [i for i, ln in enumerate(lines) if ln.split()[:2] == ["BatchNormalization", "fate"]]
    assert len(head) == 1, p.stderr
    per_bn = C.parse_verbose(p.stderr)   # the old one-line-per-BN contract stays
    rows = lines[head[0] + 1:head[0] + 1 + len(per_bn)]
    cols = [lines[head[0]].index(h) for h in ("fate", "kind", "into / reason", "worst scale")]
    for row in rows:
        name = row.split()[0]
        assert name in per_bn, row
        fate, op, node, kind = per_bn[name][0]
        assert row[cols[0]:].startswith("folded") and row[cols[1]:].startswith(kind), row
        assert row[cols[2]:].startswith("%s '%s'" % (op, node)), row
        assert row[cols[3] - 2:cols[3]] == "  " and "(channel" in row[cols[3]:], row
    assert "\r" not in p.stderr, "no progress output when stderr is not a terminal"
