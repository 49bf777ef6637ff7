"""Input shapes the check chooses for dimensions the model leaves unknown.

Fixtures: tests/fixtures/gen_shapes.py (each builder's docstring says what
its graph allows). What a test expects follows from the graph's arithmetic
and is confirmed by onnxruntime (tests/ortutil.py): it runs each model at the
shape bnfold chose and refuses it at the shapes bnfold must not choose, and
bnfold's --run outputs at the chosen shape match onnxruntime's on the same
values. Nothing expected here comes from bnfold itself.
"""

import json
import os
import re

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import FIXTURES, describe, run
import ortutil

SHAPES = os.path.join(FIXTURES, "shapes")
RECOGNIZER = os.path.join(SHAPES, "recognizer.onnx")
RECOGNIZER_M1 = os.path.join(SHAPES, "recognizer_minus_one.onnx")
DETECTOR = os.path.join(SHAPES, "detector.onnx")
DETECTOR_S64 = os.path.join(SHAPES, "detector_s64.onnx")
DETECTOR_META = os.path.join(SHAPES, "detector_meta.onnx")
SEQUENCE = os.path.join(SHAPES, "sequence.onnx")
IMPLIED = os.path.join(SHAPES, "implied.onnx")
FLAT = os.path.join(SHAPES, "flat.onnx")
NHWC = os.path.join(SHAPES, "nhwc.onnx")
W_SYMBOL = "p2o.DynamicDimension.1"

RE_VERIFIED = re.compile(r"^bnfold: verified: .* \((?P<mode>graph|per fold)(?:, [^)]*)?\)$")
RE_INPUT = re.compile(r"^bnfold: input '(?P<name>[^']*)': (?P<dims>[0-9x]+|scalar) "
                      r"\((?P<why>.*)\)$")
RE_SKIPPED = re.compile(r"^bnfold: whole-graph check skipped: check could not run: at input "
                        r"shapes (?P<shapes>.*?): (?P<why>.*); checking each fold instead$")


@pytest.fixture(scope="module")
def ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available: onnxruntime cannot run")


def lines(regex, stderr):
    return [m for m in map(regex.match, stderr.splitlines()) if m]


def input_lines(stderr):
    return {m["name"]: (tuple(int(d) for d in m["dims"].split("x")), m["why"])
            for m in lines(RE_INPUT, stderr)}


def check_json(bnfold, tmp_path, path, args=()):
    """bnfold -n --json: (process, the report's check object)."""
    rep = tmp_path / "report.json"
    proc = run(bnfold, ["-n", "--json", str(rep)] + list(args) + [path])
    with open(rep) as f:
        return proc, json.load(f)["check"]


def inputs_of(check):
    return {i["name"]: i for i in check["inputs"]}


def ort_accepts(path, feeds):
    try:
        ortutil.run_ort(path, feeds)
        return True
    except ortutil.OrtError:
        return False


def zeros(*shape):
    return np.zeros(shape, np.float32)


def with_input_echo(path, tmp_path):
    """The model with every graph input also a graph output (Identity), so
    that --run writes the values it made up next to the real outputs."""
    m = onnx.load(path)
    for vi in list(m.graph.input):
        m.graph.node.append(helper.make_node("Identity", [vi.name], ["echo_" + vi.name],
                                             name="echo_" + vi.name))
        out = onnx.ValueInfoProto()
        out.CopyFrom(vi)
        out.name = "echo_" + vi.name
        m.graph.output.append(out)
    onnx.checker.check_model(m)
    dst = str(tmp_path / ("echo_" + os.path.basename(path)))
    onnx.save(m, dst)
    return dst


def read_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def run_like_ort(bnfold, tmp_path, path, args=()):
    """bnfold --run on path at the shapes it chooses, and onnxruntime on the
    same input values: returns (bnfold's outputs, onnxruntime's, inputs)."""
    echo = with_input_echo(path, tmp_path)
    d = tmp_path / "run"
    d.mkdir()
    proc = run(bnfold, ["--run", echo, "--output-dir", str(d)] + list(args))
    assert proc.returncode == 0, describe(proc)
    m = onnx.load(path)
    feeds = {vi.name: read_pb(str(d / ("echo_%s.pb" % vi.name))) for vi in m.graph.input}
    got = {o.name: read_pb(str(d / ("%s.pb" % o.name))) for o in m.graph.output}
    return got, ortutil.run_ort(path, feeds), feeds, proc


# ---------------------------------------------------------------------------
# the recogniser: [N, 3, 48, W]

def spec_width(w):
    """The recogniser's width after each stage by the operators' output-size
    formula, floor((in + pads - kernel) / stride) + 1: conv k3 s2 p1,
    AveragePool k2 s2, conv k3 s1 p1, MaxPool k2 s2, conv k3 s1 p1."""
    sizes = [w]
    for k, s, p in [(3, 2, 2), (2, 2, 0), (3, 1, 2), (2, 2, 0), (3, 1, 2)]:
        sizes.append((sizes[-1] + p - k) // s + 1)
    return sizes


def test_recognizer_is_checked_whole_graph_without_flags(bnfold, ort, tmp_path):
    # Width 1 (the old default) leaves the AveragePool no output column by
    # the spec's formula (onnxruntime rounds it up to one and runs anyway);
    # 224 keeps 28 columns to the end.
    assert spec_width(1)[2] == 0
    assert spec_width(224)[-1] == 28
    assert ort_accepts(RECOGNIZER, {"x": zeros(1, 3, 48, 224)})
    proc, check = check_json(bnfold, tmp_path, RECOGNIZER)
    assert proc.returncode == 0, describe(proc)
    assert lines(RE_VERIFIED, proc.stderr)[0]["mode"] == "graph", proc.stderr
    assert check["whole_graph"] and check["pass"] and check["fallback"] is None
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 3, 48, 224]
    assert x["sources"] == ["batch", "declared", "declared", "probed"]
    assert x["symbols"] == [None, None, None, W_SYMBOL]
    # The line next to the verified one says which shape and why.
    dims, why = input_lines(proc.stderr)["x"]
    assert dims == (1, 3, 48, 224)
    assert "%s=224 probed" % W_SYMBOL in why and "dim 0=1 batch" in why
    assert 1 <= check["input_probe"]["probes"] <= 48 and check["input_probe"]["passed"]
    # 224 is a multiple of the model's stride along W (2 * 2 * 2).
    assert check["input_probe"]["stride"] == 8


def test_recognizer_declared_minus_one(bnfold, ort, tmp_path):
    # paddle2onnx's -1 is an unknown dim like a symbol: the same shape is
    # chosen, and onnxruntime runs the model there.
    dims = [d.dim_value for d in onnx.load(RECOGNIZER_M1).graph.input[0].type.tensor_type
            .shape.dim]
    assert dims == [-1, 3, 48, -1]
    assert ort_accepts(RECOGNIZER_M1, {"x": zeros(1, 3, 48, 224)})
    proc, check = check_json(bnfold, tmp_path, RECOGNIZER_M1)
    assert proc.returncode == 0, describe(proc)
    assert check["whole_graph"] and check["pass"]
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 3, 48, 224]
    assert x["sources"] == ["batch", "declared", "declared", "probed"]
    assert input_lines(proc.stderr)["x"][1] == "dim 0=1 batch; dim 3=224 probed"


def test_recognizer_run_matches_onnxruntime_at_the_chosen_width(bnfold, ort, tmp_path):
    got, want, feeds, proc = run_like_ort(bnfold, tmp_path, RECOGNIZER)
    assert feeds["x"].shape == (1, 3, 48, 224)
    assert input_lines(proc.stderr)["x"][0] == (1, 3, 48, 224)
    # T = W / 8 time steps of 10 classes.
    assert got["y"].shape == want["y"].shape == (1, 28, 10)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)


def test_recognizer_at_width_one_falls_back_to_per_fold(bnfold, tmp_path):
    # The user's --dim stays authoritative even where the model refuses it:
    # the whole-graph check cannot run, each fold is checked instead, and the
    # folded model is still written (exit 0).
    out = tmp_path / "out.onnx"
    proc = run(bnfold, ["--dim", W_SYMBOL + "=1", RECOGNIZER, "-o", str(out)])
    assert proc.returncode == 0, describe(proc)
    skipped = lines(RE_SKIPPED, proc.stderr)
    assert len(skipped) == 1, proc.stderr
    assert skipped[0]["shapes"] == "x=1x3x48x1"
    assert "AveragePool" in skipped[0]["why"]
    assert lines(RE_VERIFIED, proc.stderr)[0]["mode"] == "per fold"
    assert out.exists()


# ---------------------------------------------------------------------------
# detectors: [batch, 3, height, width] with an FPN

@pytest.mark.parametrize("path,size,stride,refused", [
    (DETECTOR, 224, 32, 100), (DETECTOR_S64, 256, 64, 224)], ids=["stride32", "stride64"])
def test_detector_sizes_are_multiples_of_the_stride(bnfold, ort, tmp_path, path, size, stride,
                                                    refused):
    # onnxruntime agrees: the FPN's Concat refuses a size the strides do not
    # divide, and runs at the chosen one.
    assert not ort_accepts(path, {"x": zeros(1, 3, refused, refused)})
    assert ort_accepts(path, {"x": zeros(1, 3, size, size)})
    proc, check = check_json(bnfold, tmp_path, path)
    assert proc.returncode == 0, describe(proc)
    assert check["whole_graph"] and check["pass"]
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 3, size, size]
    assert x["sources"] == ["batch", "declared", "probed", "probed"]
    assert x["symbols"] == ["batch", None, "height", "width"]
    assert check["input_probe"]["stride"] == stride
    assert size % stride == 0
    # 224 passes at once where it can; a stride of 64 needs one more probe.
    assert check["input_probe"]["probes"] == (1 if size == 224 else 2)


def test_detector_run_matches_onnxruntime(bnfold, ort, tmp_path):
    got, want, feeds, _ = run_like_ort(bnfold, tmp_path, DETECTOR)
    assert feeds["x"].shape == (1, 3, 224, 224)
    # Heads at strides 16, 8 and 4.
    assert [got["p%d" % i].shape for i in range(3)] == [(1, 6, 14, 14), (1, 6, 28, 28),
                                                         (1, 6, 56, 56)]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_detector_shape_the_model_refuses_falls_back(bnfold, ort, tmp_path):
    proc, check = check_json(bnfold, tmp_path, DETECTOR, ["--shape", "x=1x3x100x100"])
    assert proc.returncode == 0, describe(proc)
    skipped = lines(RE_SKIPPED, proc.stderr)
    assert len(skipped) == 1 and skipped[0]["shapes"] == "x=1x3x100x100", proc.stderr
    assert "Concat" in skipped[0]["why"]
    assert not check["whole_graph"] and check["pass"]
    assert check["fallback"].startswith("check could not run: at input shapes x=1x3x100x100")
    assert all(f["checked"] and f["pass"] for f in check["folds"])
    # The shapes it tried are in the report.
    assert inputs_of(check)["x"]["shape"] == [1, 3, 100, 100]
    assert inputs_of(check)["x"]["sources"] == ["user"] * 4


def test_detector_metadata_sizes(bnfold, ort, tmp_path):
    meta = {p.key: p.value for p in onnx.load(DETECTOR_META).metadata_props}
    assert meta["imgsz"] == "[320, 256]"
    assert ort_accepts(DETECTOR_META, {"x": zeros(1, 3, 320, 256)})
    proc, check = check_json(bnfold, tmp_path, DETECTOR_META)
    assert proc.returncode == 0, describe(proc)
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 3, 320, 256]
    assert x["sources"] == ["model", "declared", "model", "model"]
    assert "imgsz" in x["origins"][2] and "batch" in x["origins"][0]
    assert check["input_probe"] is None  # nothing was left to probe


# ---------------------------------------------------------------------------
# a sequence, and dims the model implies

def test_sequence_takes_the_small_default(bnfold, ort, tmp_path):
    proc, check = check_json(bnfold, tmp_path, SEQUENCE)
    assert proc.returncode == 0, describe(proc)
    assert check["whole_graph"] and check["pass"]
    ins = inputs_of(check)
    # Rank 3 is not image-like; x and mask share both symbols.
    assert ins["x"]["shape"] == [1, 16, 16] and ins["mask"]["shape"] == [1, 16]
    assert ins["x"]["sources"] == ["batch", "declared", "default"]
    assert ins["mask"]["sources"] == ["batch", "default"]
    got, want, feeds, _ = run_like_ort(bnfold, tmp_path, SEQUENCE)
    assert feeds["x"].shape == (1, 16, 16) and feeds["mask"].shape == (1, 16)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)


def test_sequence_dim_sets_both_inputs(bnfold, tmp_path):
    proc, check = check_json(bnfold, tmp_path, SEQUENCE, ["--dim", "seq=40"])
    assert proc.returncode == 0, describe(proc)
    ins = inputs_of(check)
    assert ins["x"]["shape"] == [1, 16, 40] and ins["mask"]["shape"] == [1, 40]
    assert ins["x"]["sources"][2] == ins["mask"]["sources"][1] == "user"


def test_shape_of_one_input_fixes_the_symbols_of_another(bnfold, tmp_path):
    proc, check = check_json(bnfold, tmp_path, SEQUENCE, ["--shape", "x=3x16x24"])
    assert proc.returncode == 0, describe(proc)
    ins = inputs_of(check)
    assert ins["x"]["shape"] == [3, 16, 24] and ins["mask"]["shape"] == [3, 24]
    assert ins["mask"]["sources"] == ["user", "user"]


def test_channels_implied_by_a_constant(bnfold, ort, tmp_path):
    # x [N, C, H, W]: Sub by a [1, 3, 1, 1] mean makes C 3, so x is an image.
    assert ort_accepts(IMPLIED, {"x": zeros(1, 3, 224, 224)})
    proc, check = check_json(bnfold, tmp_path, IMPLIED)
    assert proc.returncode == 0, describe(proc)
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 3, 224, 224]
    assert x["sources"] == ["batch", "model", "probed", "probed"]
    assert "Sub" in x["origins"][1]


def test_size_implied_by_a_reshape_target(bnfold, ort, tmp_path):
    # x [batch, features] is reshaped to [1, 3, 16, 16]: features = 768.
    assert ort_accepts(FLAT, {"x": zeros(1, 768)})
    proc, check = check_json(bnfold, tmp_path, FLAT)
    assert proc.returncode == 0, describe(proc)
    assert check["whole_graph"] and check["pass"]
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 768] and x["sources"] == ["batch", "model"]
    assert "Reshape" in x["origins"][1]


def test_channels_last_image(bnfold, ort, tmp_path):
    # x [N, H, W, 3]: channels known last, so H and W are spatial sizes.
    proc, check = check_json(bnfold, tmp_path, NHWC)
    assert proc.returncode == 0, describe(proc)
    assert check["whole_graph"] and check["pass"]
    x = inputs_of(check)["x"]
    assert x["shape"] == [1, 224, 224, 3]
    assert x["sources"] == ["batch", "probed", "probed", "declared"]
    got, want, feeds, _ = run_like_ort(bnfold, tmp_path, NHWC)
    assert feeds["x"].shape == (1, 224, 224, 3)
    # 224 -> conv s2 p1 -> 112 -> MaxPool k3 s2 -> 55.
    assert got["y"].shape == want["y"].shape == (1, 4, 55, 55)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# the user's --shape and --dim win

@pytest.mark.parametrize("path,args,name,shape,sources", [
    (RECOGNIZER, ["--shape", "x=2x3x48x96"], "x", [2, 3, 48, 96], ["user"] * 4),
    (RECOGNIZER, ["--dim", W_SYMBOL + "=64"], "x", [1, 3, 48, 64],
     ["batch", "declared", "declared", "user"]),
    (DETECTOR, ["--dim", "height=64", "--dim", "width=96"], "x", [1, 3, 64, 96],
     ["batch", "declared", "user", "user"]),
    (DETECTOR_META, ["--dim", "batch=2", "--dim", "height=128"], "x", [2, 3, 128, 256],
     ["user", "declared", "user", "model"]),
    (FLAT, ["--shape", "x=1x768"], "x", [1, 768], ["user", "user"]),
], ids=["recognizer-shape", "recognizer-dim", "detector-dims", "metadata-dims", "reshape"])
def test_user_shapes_win(bnfold, tmp_path, path, args, name, shape, sources):
    proc, check = check_json(bnfold, tmp_path, path, args)
    assert proc.returncode == 0, describe(proc)
    assert check["whole_graph"] and check["pass"]
    ins = inputs_of(check)
    assert ins[name]["shape"] == shape and ins[name]["sources"] == sources
    # What the user gave is no choice of bnfold's: without -v no input line
    # unless some dim was chosen.
    chosen = any(s not in ("user", "declared", "file") for s in sources)
    assert (name in input_lines(proc.stderr)) == chosen, proc.stderr


def test_run_follows_user_dim(bnfold, ort, tmp_path):
    got, want, feeds, _ = run_like_ort(bnfold, tmp_path, RECOGNIZER,
                                       ["--dim", W_SYMBOL + "=40"])
    assert feeds["x"].shape == (1, 3, 48, 40)
    assert got["y"].shape == (1, 5, 10)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)


def test_verbose_lists_every_input(bnfold, tmp_path):
    # A model whose inputs are all declared: -v still says which shapes ran.
    path = os.path.join(FIXTURES, "example.onnx")
    proc = run(bnfold, ["-n", "-v", path])
    assert proc.returncode == 0, describe(proc)
    declared = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
                for vi in onnx.load(path).graph.input}
    got = input_lines(proc.stderr)
    assert {k: v[0] for k, v in got.items()} == declared
    assert all(why == "as given or declared" for _, why in got.values())
    quiet = run(bnfold, ["-n", path])
    assert not input_lines(quiet.stderr)


def test_compare_reports_the_shapes(bnfold, tmp_path):
    out = str(tmp_path / "folded.onnx")
    assert run(bnfold, [RECOGNIZER, "-o", out]).returncode == 0
    proc = run(bnfold, ["--compare", RECOGNIZER, out])
    assert proc.returncode == 0, describe(proc)
    assert input_lines(proc.stderr)["x"][0] == (1, 3, 48, 224)


@pytest.mark.parametrize("args,fragment", [
    (["--dim", "nosuch=3"], "--dim nosuch"),
    (["--shape", "nosuch=1x3x48x64"], "--shape nosuch"),
], ids=["dim", "shape"])
def test_misspelt_names_are_usage_errors(bnfold, tmp_path, args, fragment):
    # A name that matches nothing must not silently leave the chosen shapes
    # in place, nor turn into a fallback: exit 2, nothing written.
    out = tmp_path / "out.onnx"
    proc = run(bnfold, args + [RECOGNIZER, "-o", str(out)])
    assert proc.returncode == 2, describe(proc)
    assert fragment in proc.stderr, describe(proc)
    assert not out.exists()
