"""Issue 4: --lower-bn, and the affine folds in the -v lines and the summary.

The fixtures (tests/fixtures/gen_fixtures.py) carry the expectations:
expect.affine maps each Mul/Add/Sub/Div after a layer to "affine" (folded)
or to the reason code it is kept with; test_fold.py runs the rest (numpy and
onnxruntime outputs, node counts, the summary's affine count).
"""

import os
import re

import numpy as np
import pytest

import conftest as C

RE_AFFINE = re.compile(
    r"^bnfold: (?P<op>Mul|Add|Sub|Div) '(?P<node>[^']*)': (?:folded into (?P<into>\S+) "
    r"'[^']*' \((?P<kind>affine)\)|kept \((?P<reason>[a-z-]+)\): .+)$")
RE_LOWERED = re.compile(
    r"^bnfold: BatchNormalization '(?P<bn>[^']*)': lowered to Mul '(?P<mul>[^']*)' and "
    r"Add '(?P<add>[^']*)' \(lowered\)$")

AFFINE = [e["file"] for e in C.GOOD if e["expect"].get("affine")]


def affine_lines(stderr):
    seen = {}
    for m in filter(None, map(RE_AFFINE.match, stderr.splitlines())):
        seen.setdefault(m["node"], []).append(m["kind"] or m["reason"])
    return seen


# Reasons a user can act on: a Mul/Add/Sub/Div kept for one of these is
# listed under -v, kept for any other only under -vv (issue 12).
ACTIONABLE = {"non-constant", "training-mode", "overflow",
              "pass-through-unsafe"}


@pytest.mark.parametrize("file", AFFINE)
def test_affine_lines(bnfold, tmp_path, file):
    entry = [e for e in C.GOOD if e["file"] == file][0]
    want = entry["expect"]["affine"]
    src = os.path.join(C.FIXTURES, file)
    proc = C.run(bnfold, ["-vv", src, "-o", str(tmp_path / "o.onnx")])
    assert proc.returncode == 0, C.describe(proc)
    got = affine_lines(proc.stderr)
    assert got == {k: [v] for k, v in want.items()}, proc.stderr
    assert all(v == "affine" or v in C.REASONS for v in want.values())
    s = C.parse_summary(proc.stderr)
    assert s["affine"] == sum(1 for v in want.values() if v == "affine"), proc.stderr
    # -v: the folded ones and those kept for a reason one can act on.
    proc = C.run(bnfold, ["-v", src, "-o", str(tmp_path / "o.onnx")])
    assert proc.returncode == 0, C.describe(proc)
    assert affine_lines(proc.stderr) == {k: [v] for k, v in want.items()
                                         if v == "affine" or v in ACTIONABLE}, proc.stderr


def test_affine_lines_need_verbose(bnfold, tmp_path):
    src = os.path.join(C.FIXTURES, "keras_conv_mul_add.onnx")
    proc = C.run(bnfold, [src, "-o", str(tmp_path / "o.onnx")])
    assert proc.returncode == 0, C.describe(proc)
    assert affine_lines(proc.stderr) == {}, proc.stderr
    assert C.parse_summary(proc.stderr)["affine"] == 2


def lone_bn(bnfold, tmp_path, args):
    src = os.path.join(C.FIXTURES, "lone_bn_relu.onnx")
    out = str(tmp_path / "lowered.onnx")
    proc = C.run(bnfold, args + [src, "-o", out])
    assert proc.returncode == 0, C.describe(proc)
    return src, out, proc


def test_lower_bn_off_by_default(bnfold, tmp_path):
    src, out, proc = lone_bn(bnfold, tmp_path, ["-v"])
    assert C.parse_verbose(proc.stderr) == {
        "bn": [("kept", "unsupported-producer", C.parse_verbose(proc.stderr)["bn"][0][2])]}
    with open(src, "rb") as a, open(out, "rb") as b:
        assert a.read() == b.read()


def test_lower_bn(bnfold, tmp_path):
    src, out, proc = lone_bn(bnfold, tmp_path, ["-v", "--lower-bn"])
    lines = [m for m in map(RE_LOWERED.match, proc.stderr.splitlines()) if m]
    assert len(lines) == 1 and lines[0]["bn"] == "bn", proc.stderr
    s = C.parse_summary(proc.stderr)
    assert (s["folded"], s["total"], s["lowered"]) == (0, 1, 1), proc.stderr
    model = C.load_model(out)
    C.onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "Mul", "Add"]
    assert C.dead_constants(model) == []
    # scale and shift are [C, 1, 1] constants for the 4-D input
    for node in model.graph.node[2:]:
        v, _ = C.const_of(model, model.graph, node.input[1])
        assert v.shape == (4, 1, 1), (node.op_type, v.shape)
    # the same numbers as the numpy reference, in onnxruntime
    import test_fold
    ort = test_fold.ort_module()
    entry = [e for e in C.GOOD if e["file"] == "lone_bn_relu.onnx"][0]
    for k, ins, outs in test_fold.samples(entry):
        got = ort.run_ort(out, ins)
        test_fold.compare_outputs(got, outs, entry, "lowered sample %d" % k)


def test_lower_bn_keeps_training_mode(bnfold, tmp_path):
    src = os.path.join(C.FIXTURES, "guard_training_mode15.onnx")
    out = str(tmp_path / "o.onnx")
    proc = C.run(bnfold, ["-v", "--lower-bn", src, "-o", out])
    assert proc.returncode == 0, C.describe(proc)
    assert C.parse_verbose(proc.stderr)["bn"][0][:2] == ("kept", "training-mode")
    assert C.parse_summary(proc.stderr)["lowered"] == 0
    assert np.array_equal(np.fromfile(src, dtype=np.uint8), np.fromfile(out, dtype=np.uint8))
