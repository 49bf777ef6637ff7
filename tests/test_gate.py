"""The deploy gate: `bnfold --check` findings on the planted fixtures of
tests/fixtures/gen_lint.py (expected codes from what each fixture plants),
--warn-only / --ignore, --check with folding, and --train-mode=eval on the
PyTorch training-mode export, checked on onnxruntime against an eval-mode
reference built from the export itself with onnx.
"""

import copy
import json
import os
import re

import numpy as np
import onnx
from onnx import helper, numpy_helper
import pytest

import conftest as C
import ortutil

LINT_DIR = os.path.join(C.FIXTURES, "lint")
TORCH_TRAINING = os.path.join(C.FIXTURES, "torch", "training_mode.onnx")
with open(os.path.join(LINT_DIR, "expected.json")) as _f:
    EXPECTED = json.load(_f)
RE_FINDING = re.compile(r"^bnfold: (?P<code>[a-z0-9-]+): (?P<op>\w+) '(?P<node>[^']*)'"
                        r"(?: \[in [^]]*\])?: (?P<msg>.+)$")
ALL_CODES = {"bn-training-mode", "bn-untrained-stats", "bn-bad-variance", "bn-nonfinite-param",
             "bn-zero-epsilon", "bn-unfolded", "fp16-overflow", "fp16-underflow",
             "dropout-training-mode"}


@pytest.fixture(scope="module")
def ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available: onnxruntime cannot run")


def findings(stderr):
    return [m for m in map(RE_FINDING.match, stderr.splitlines()) if m]


def codes(stderr):
    return sorted(m["code"] for m in findings(stderr))


def test_every_code_has_a_fixture():
    planted = {c for e in EXPECTED.values() for c in e["codes"]}
    assert planted == ALL_CODES
    assert any(not e["codes"] for e in EXPECTED.values()), "no clean fixture"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_finds_what_was_planted(bnfold, name, tmp_path):
    path = os.path.join(LINT_DIR, name)
    before = os.listdir(tmp_path)
    p = C.run(bnfold, ["--check", path], cwd=str(tmp_path))
    want = EXPECTED[name]["codes"]
    assert p.returncode == (1 if want else 0), C.describe(p)
    assert codes(p.stderr) == want, C.describe(p)
    assert os.listdir(tmp_path) == before, "--check alone must write nothing"
    for m in findings(p.stderr):
        assert m["node"], "a finding names its node"
    if "bn-training-mode" in want:
        assert "exported in training mode? outputs will depend on the batch" in p.stderr


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e["codes"]))
def test_warn_only_and_ignore(bnfold, name):
    path = os.path.join(LINT_DIR, name)
    want = EXPECTED[name]["codes"]
    p = C.run(bnfold, ["--check", "--warn-only", ",".join(want), path])
    assert p.returncode == 0, C.describe(p)
    assert codes(p.stderr) == want
    assert p.stderr.count("(warning only)") == len(want)
    p = C.run(bnfold, ["--check", "--ignore", ",".join(sorted(set(want))), path])
    assert p.returncode == 0, C.describe(p)
    assert codes(p.stderr) == []
    if len(set(want)) > 1:  # ignoring one code leaves the others failing
        p = C.run(bnfold, ["--check", "--ignore", want[0], path])
        assert p.returncode == 1 and want[0] not in codes(p.stderr), C.describe(p)


def test_unknown_code_is_a_usage_error(bnfold):
    p = C.run(bnfold, ["--check", "--ignore", "bn-unfolded,no-such-code",
                       os.path.join(LINT_DIR, "bn_unfolded.onnx")])
    assert p.returncode == 2 and "no-such-code" in p.stderr, C.describe(p)


def test_unusable_input_exits_2(bnfold, tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"\xff\xff\xff not a model")
    p = C.run(bnfold, ["--check", str(bad)])
    assert p.returncode == 2, C.describe(p)
    p = C.run(bnfold, ["--check", str(tmp_path / "missing.onnx")])
    assert p.returncode == 2, C.describe(p)


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if e.get("folds")))
def test_check_with_output_lints_the_folded_model(bnfold, name, tmp_path):
    out = tmp_path / "folded.onnx"
    path = os.path.join(LINT_DIR, name)
    want = EXPECTED[name].get("folded_codes", [])
    p = C.run(bnfold, ["--check", path, "-o", str(out)])
    assert p.returncode == (1 if want else 0), C.describe(p)
    assert codes(p.stderr) == want, C.describe(p)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert C.bn_names(model) == [], "the BN must be folded"
    if want:
        # The finding names the folded Conv; numpy agrees on the weights.
        w = np.asarray(C.const_of(model, model.graph, "conv.W")[0], dtype=np.float64)
        if "fp16-overflow" in want:
            assert np.abs(w).max() > 65504
        if "fp16-underflow" in want:
            flushed = [c for c in range(w.shape[0])
                       if np.all(w[c].astype(np.float16) == 0) and np.any(w[c] != 0)]
            assert flushed
        assert findings(p.stderr)[0]["node"] == "conv"


def test_clean_check_with_output(bnfold, tmp_path):
    out = tmp_path / "folded.onnx"
    p = C.run(bnfold, ["--check", os.path.join(LINT_DIR, "bn_unfolded.onnx"), "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    assert "check: no findings" in p.stderr


# ---------------------------------------------------------------------------
# --train-mode=eval

@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if "convertible" in e))
def test_train_mode_eval_on_lint_fixtures(bnfold, name, tmp_path):
    out = tmp_path / "eval.onnx"
    path = os.path.join(LINT_DIR, name)
    p = C.run(bnfold, ["--train-mode=eval", "--check", path, "-o", str(out)])
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    n = [x for x in model.graph.node if x.op_type in ("BatchNormalization", "Dropout")][0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    if EXPECTED[name]["convertible"]:
        assert p.returncode == 0, C.describe(p)
        assert "converted 1 of 1 training-mode node to eval mode" in p.stderr
        assert attrs.get("training_mode", 0) == 0
        if C.gen.model_opset(model) < 7:
            assert attrs["is_test"] == 1
        if n.op_type == "Dropout":
            assert len(n.input) < 3 or n.input[2] == ""
        else:
            assert [o for o in n.output[1:] if o] == []
    else:
        # The running mean is a graph output: left alone, with its reason.
        assert p.returncode == 1, C.describe(p)
        assert "left in training mode" in p.stderr and "'rmean'" in p.stderr
        assert attrs["training_mode"] == 1 and list(n.output) == ["y", "rmean", "rvar"]


def test_train_mode_bad_value(bnfold, tmp_path):
    p = C.run(bnfold, ["--train-mode=maybe", TORCH_TRAINING, "-o", str(tmp_path / "x.onnx")])
    assert p.returncode == 2 and "refuse" in p.stderr, C.describe(p)


def test_torch_training_export_is_flagged(bnfold):
    p = C.run(bnfold, ["--check", TORCH_TRAINING])
    assert p.returncode == 1, C.describe(p)
    assert codes(p.stderr) == ["bn-training-mode", "bn-training-mode"]


def test_torch_training_export_refused_by_default(bnfold, tmp_path):
    p = C.run(bnfold, ["-v", TORCH_TRAINING, "-o", str(tmp_path / "x.onnx")])
    assert p.returncode == 0, C.describe(p)
    seen = C.parse_verbose(p.stderr)
    assert all(v[0][0] == "kept" and v[0][1] == "training-mode" for v in seen.values()), seen


def eval_reference(model):
    """The export with training_mode=0 and its extra outputs removed (onnx)."""
    m = copy.deepcopy(model)
    for node in m.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        keep = [a for a in node.attribute if a.name != "training_mode"]
        del node.attribute[:]
        node.attribute.extend(keep)
        del node.output[1:]
    onnx.checker.check_model(m)
    return m


def test_torch_training_export_converted_matches_eval_mode(bnfold, ort, tmp_path):
    model = onnx.load(TORCH_TRAINING)
    ref_path = str(tmp_path / "reference.onnx")
    onnx.save(eval_reference(model), ref_path)
    out = str(tmp_path / "folded.onnx")
    p = C.run(bnfold, ["--train-mode=eval", "--check", "-v", TORCH_TRAINING, "-o", out])
    assert p.returncode == 0, C.describe(p)
    assert "converted 2 of 2 training-mode nodes to eval mode" in p.stderr
    assert codes(p.stderr) == []
    folded = onnx.load(out)
    onnx.checker.check_model(folded)
    assert C.bn_names(folded) == []
    rng = np.random.default_rng(5)
    for _ in range(2):
        x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
        want = ortutil.run_ort(ref_path, {"input": x})["output"]
        got = ortutil.run_ort(out, {"input": x})["output"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        # Not the batch-statistics result: the training-mode graph on onnxruntime.
        train = ortutil.run_ort(TORCH_TRAINING, {"input": x})["output"]
        assert not np.allclose(got, train, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize("extra", [[], ["-v"], ["--json", "-"]], ids=["plain", "v", "json"])
def test_check_on_large_weights(bnfold, tmp_path, stdin, extra):
    """The gate's fold probe and the model read both borrow the tensors'
    bytes (weights of 4 KiB and more) from the same input: each tree gives
    its borrowing back on its own. A 295 kB Conv weight before a
    BatchNormalization is one finding, and the run ends cleanly."""
    rng = np.random.default_rng(21)
    w = rng.standard_normal((128, 64, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    for name in ("s", "b", "m", "v"):
        v = rng.uniform(0.5, 1.5, 128) if name in "sv" else rng.standard_normal(128)
        inits.append(numpy_helper.from_array(v.astype(np.float32), name))
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"],
                                   name="bn")]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 128, 6, 6])],
        initializer=inits)
    path = tmp_path / "big.onnx"
    path.write_bytes(helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    if stdin:
        proc = C.run(bnfold, ["--check", "-"] + extra, stdin=path.read_bytes())
    else:
        proc = C.run(bnfold, ["--check", str(path)] + extra)
    assert proc.returncode == 1, C.describe(proc)
    assert [(f["code"], f["node"]) for f in findings(proc.stderr)] == [("bn-unfolded", "bn")]
