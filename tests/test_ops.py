"""The evaluator's operator coverage: what `bnfold --list-ops` promises, how
a model with missing operators is refused (all of them named in one line),
the quantization operators against ONNX's backend data, and the operators
added for detection, voice and quantized models against independent
references on random inputs: onnxruntime (tests/ortutil.py) or numpy.

Nothing here compares bnfold with itself.
"""

import glob
import os
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import ortutil
from conftest import describe, run

NODE_DIR = os.environ.get("BNFOLD_NODE_TESTS", "/usr/share/libonnx-testdata/data/node")
RE_OP_LINE = re.compile(r"(\w+) (\d+)-(\d*)")

NP_TYPES = {TP.FLOAT: np.float32, TP.DOUBLE: np.float64, TP.INT64: np.int64,
            TP.INT32: np.int32, TP.INT16: np.int16, TP.INT8: np.int8, TP.UINT8: np.uint8,
            TP.UINT16: np.uint16, TP.UINT32: np.uint32, TP.UINT64: np.uint64,
            TP.BOOL: np.bool_}
TP_OF = {np.dtype(v): k for k, v in NP_TYPES.items()}


@pytest.fixture(scope="module")
def ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available: onnxruntime cannot run")


# ---------------------------------------------------------------------------
# helpers

def make_model(nodes, inputs, outputs, opset, inits=(), domains=()):
    """inputs: {name: array}; outputs: [name] (types left to shape inference
    by onnxruntime, declared here as the element type only when known)."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TP_OF[np.asarray(a).dtype], list(np.shape(a)))
         for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)] +
                              [helper.make_opsetid(d, 1) for d in domains])
    model.ir_version = 8
    return model


def bnfold_run(bnfold, model, inputs, tmp_path, expect_ok=True):
    """Save model, run `bnfold --run` on inputs {name: array} (as .pb files):
    {output name: array}, or the finished process when expect_ok is False."""
    work = tmp_path / ("run%d" % len(list(tmp_path.iterdir())))
    (work / "out").mkdir(parents=True)
    path = str(work / "m.onnx")
    onnx.save(model, path)
    args = ["--run", path, "--output-dir", str(work / "out")]
    for k, (name, arr) in enumerate(inputs.items()):
        pb = work / ("in%d.pb" % k)
        pb.write_bytes(numpy_helper.from_array(np.asarray(arr), name).SerializeToString())
        args += ["--input", "%s=%s" % (name, pb)]
    proc = run(bnfold, args)
    if not expect_ok:
        return proc
    assert proc.returncode == 0, describe(proc)
    res = {}
    for out in model.graph.output:
        t = onnx.load_tensor(str(work / "out" / (out.name + ".pb")))
        res[out.name] = numpy_helper.to_array(t)
    return res, path


def compare_with_ort(bnfold, model, inputs, tmp_path, rtol=1e-5, atol=1e-6):
    got, path = bnfold_run(bnfold, model, inputs, tmp_path)
    want = ortutil.run_ort(path, inputs)
    assert list(got) == list(want)
    for name in want:
        g, w = got[name], want[name]
        assert g.dtype == w.dtype and g.shape == w.shape, \
            "%s: %s %s, onnxruntime %s %s" % (name, g.dtype, g.shape, w.dtype, w.shape)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)
    return got


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, name=op.lower(), **attrs)


# ---------------------------------------------------------------------------
# --list-ops

def list_ops(bnfold):
    proc = run(bnfold, ["--list-ops"])
    assert proc.returncode == 0 and proc.stderr == "", describe(proc)
    return proc.stdout.decode().splitlines()


def test_list_ops_is_one_line_per_row_sorted(bnfold):
    lines = list_ops(bnfold)
    parsed = []
    for line in lines:
        m = RE_OP_LINE.fullmatch(line)
        assert m, "not 'Name first-[last]': %r" % line
        first, last = int(m[2]), int(m[3]) if m[3] else None
        assert last is None or last >= first, line
        parsed.append((m[1], first, last))
    assert parsed == sorted(parsed, key=lambda p: (p[0], p[1])), "not sorted"
    # Rows of one operator do not overlap.
    for (a, fa, la), (b, fb, _) in zip(parsed, parsed[1:]):
        if a == b:
            assert la is not None and la < fb, (a, fa, la, fb)


@pytest.mark.parametrize("line", [
    "If 1-", "Loop 1-", "Scan 8-", "TopK 1-", "NonMaxSuppression 10-", "RoiAlign 10-",
    "QuantizeLinear 10-", "DequantizeLinear 10-", "DynamicQuantizeLinear 11-",
    "ConvInteger 10-", "MatMulInteger 10-", "QLinearConv 10-", "QLinearMatMul 10-",
    "GreaterOrEqual 12-", "Xor 1-", "BitShift 11-", "ReduceMin 1-", "Round 11-",
    "Upsample 7-9", "Scatter 9-10", "Conv 1-", "GatherElements 11-", "ReduceSumSquare 1-",
])
def test_list_ops_names(bnfold, line):
    assert line in list_ops(bnfold)


def test_list_ops_range_end_is_enforced(bnfold, tmp_path):
    # Upsample was deprecated in opset 10: the list says 7-9, and a model
    # of opset 10 using it is refused as unsupported.
    x = np.ones((1, 1, 2, 2), np.float32)
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    model = make_model([node("Upsample", ["x", "scales"], ["y"])], {"x": x},
                       [("y", TP.FLOAT)], 9, inits=[scales])
    got, _ = bnfold_run(bnfold, model, {"x": x}, tmp_path)
    assert got["y"].shape == (1, 1, 4, 4)
    model.opset_import[0].version = 10
    proc = bnfold_run(bnfold, model, {"x": x}, tmp_path, expect_ok=False)
    assert proc.returncode == 2 and "unsupported operator Upsample" in proc.stderr, \
        describe(proc)


# ---------------------------------------------------------------------------
# missing operators: all named in one line

def model_with_missing_ops():
    """Three operators the evaluator lacks, one of them twice and one inside
    an If branch: x -> Gelu -> FastGelu -> FastGelu -> If(then: Frobnicate)."""
    then_g = helper.make_graph(
        [helper.make_node("Frobnicate", ["c"], ["t"], name="frob", domain="com.example")],
        "then_branch", [], [helper.make_tensor_value_info("t", TP.FLOAT, None)])
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["e"], name="id")],
        "else_branch", [], [helper.make_tensor_value_info("e", TP.FLOAT, None)])
    nodes = [helper.make_node("Gelu", ["x"], ["a"], name="gelu", domain="com.microsoft"),
             helper.make_node("FastGelu", ["a"], ["b"], name="fg1", domain="com.microsoft"),
             helper.make_node("FastGelu", ["b"], ["c"], name="fg2", domain="com.microsoft"),
             helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_g,
                              else_branch=else_g)]
    inputs = {"x": np.ones((1, 4), np.float32), "cond": np.array(True)}
    return make_model(nodes, inputs, [("y", TP.FLOAT)], 15,
                      domains=("com.microsoft", "com.example")), inputs


def test_run_names_every_missing_operator(bnfold, tmp_path):
    model, inputs = model_with_missing_ops()
    proc = bnfold_run(bnfold, model, inputs, tmp_path, expect_ok=False)
    assert proc.returncode == 2, describe(proc)
    lines = [l for l in proc.stderr.splitlines() if "unsupported" in l]
    assert len(lines) == 1, describe(proc)
    assert lines[0].endswith(
        ": unsupported operators com.microsoft.Gelu, com.microsoft.FastGelu, "
        "com.example.Frobnicate (first at node 'gelu')"), lines[0]


def test_fold_fallback_names_every_missing_operator(bnfold, tmp_path):
    # A foldable Conv -> BN in front of the same unsupported tail: the fold
    # is checked on its own, and the one line saying why names them all.
    model, _ = model_with_missing_ops()
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "W")]
    for name, v in (("s", 1.5), ("b0", 0.1), ("m", 0.2), ("v", 0.9)):
        inits.append(numpy_helper.from_array(np.full(4, v, np.float32), name))
    conv = [helper.make_node("Conv", ["img", "W"], ["cv"], name="conv"),
            helper.make_node("BatchNormalization", ["cv", "s", "b0", "m", "v"], ["bn"],
                             name="bn"),
            helper.make_node("Flatten", ["bn"], ["x"], name="flat", axis=0)]
    g = model.graph
    g.node[0].input[0] = "x"
    g.node.insert(0, conv[2])
    g.node.insert(0, conv[1])
    g.node.insert(0, conv[0])
    g.initializer.extend(inits)
    del g.input[0]
    g.input.insert(0, helper.make_tensor_value_info("img", TP.FLOAT, [1, 3, 1, 1]))
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    proc = run(bnfold, ["-n", path])
    assert proc.returncode == 0, describe(proc)
    (line,) = [l for l in proc.stderr.splitlines() if "whole-graph check skipped" in l]
    for op in ("com.microsoft.Gelu", "com.microsoft.FastGelu", "com.example.Frobnicate"):
        assert op in line, line
    assert "(per fold, 1 fold)" in proc.stderr  # the verified line of the per-fold check


# ---------------------------------------------------------------------------
# the quantization operators against ONNX's backend data

QUANT_DIRS = sorted(os.path.basename(d) for d in glob.glob(os.path.join(NODE_DIR, "test_*"))
                    if re.search(r"quantizelinear|convinteger|matmulinteger|qlinear",
                                 os.path.basename(d)) and not d.endswith("_expanded"))


def test_quantization_backend_data_is_there():
    if not os.path.isdir(NODE_DIR):
        pytest.skip("no backend test data at " + NODE_DIR)
    assert len(QUANT_DIRS) >= 14, QUANT_DIRS


@pytest.mark.parametrize("name", QUANT_DIRS)
def test_quantization_backend_data(bnfold, tmp_path, name):
    d = os.path.join(NODE_DIR, name)
    model = onnx.load(os.path.join(d, "model.onnx"))
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    for case in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
        inputs = {}
        for k, n in enumerate(names):
            inputs[n] = numpy_helper.to_array(onnx.load_tensor(
                os.path.join(case, "input_%d.pb" % k)))
        got, _ = bnfold_run(bnfold, model, inputs, tmp_path)
        for k, out in enumerate(model.graph.output):
            want = numpy_helper.to_array(onnx.load_tensor(
                os.path.join(case, "output_%d.pb" % k)))
            assert got[out.name].dtype == want.dtype, out.name
            if np.issubdtype(want.dtype, np.floating):
                np.testing.assert_allclose(got[out.name], want, rtol=1e-6, atol=1e-7)
            else:
                np.testing.assert_array_equal(got[out.name], want, err_msg=out.name)


# ---------------------------------------------------------------------------
# quantization against onnxruntime, on random data

def test_quantize_dequantize_per_axis(bnfold, ort, tmp_path):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((2, 3, 4)) * 4).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([0.05, 0.1, 0.02], np.float32), "s"),
             numpy_helper.from_array(np.array([-3, 0, 7], np.int8), "z")]
    nodes = [node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq", axis=1)]
    model = make_model(nodes, {"x": x}, [("q", TP.INT8), ("y", TP.FLOAT)], 13, inits=inits)
    compare_with_ort(bnfold, model, {"x": x}, tmp_path)


def test_dynamic_quantize_linear(bnfold, ort, tmp_path):
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((3, 17)) * 3 + 1).astype(np.float32)
    model = make_model([node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], {"x": x},
                       [("y", TP.UINT8), ("s", TP.FLOAT), ("z", TP.UINT8)], 11)
    compare_with_ort(bnfold, model, {"x": x}, tmp_path)


def test_qlinear_conv_per_channel_with_bias(bnfold, ort, tmp_path):
    rng = np.random.default_rng(13)
    x = rng.integers(0, 256, (1, 3, 7, 6)).astype(np.uint8)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
                                     "w"),
             numpy_helper.from_array(np.array([0.01, 0.02, 0.005, 0.03], np.float32), "ws"),
             numpy_helper.from_array(np.zeros(4, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.2, np.float32), "ys"),
             numpy_helper.from_array(np.array(10, np.uint8), "yz"),
             numpy_helper.from_array(rng.integers(-500, 500, 4).astype(np.int32), "b")]
    model = make_model([node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                             ["y"], pads=[1, 1, 1, 1], strides=[2, 1])],
                       {"x": x}, [("y", TP.UINT8)], 10, inits=inits)
    compare_with_ort(bnfold, model, {"x": x}, tmp_path)


def test_qlinear_matmul_and_integer_ops(bnfold, ort, tmp_path):
    rng = np.random.default_rng(14)
    a = rng.integers(0, 256, (2, 5, 6)).astype(np.uint8)
    inits = [numpy_helper.from_array(np.array(0.03, np.float32), "as"),
             numpy_helper.from_array(np.array(120, np.uint8), "az"),
             numpy_helper.from_array(rng.integers(0, 256, (6, 4)).astype(np.uint8), "b"),
             numpy_helper.from_array(np.array(0.02, np.float32), "bs"),
             numpy_helper.from_array(np.array(130, np.uint8), "bz"),
             numpy_helper.from_array(np.array(0.5, np.float32), "ys"),
             numpy_helper.from_array(np.array(100, np.uint8), "yz"),
             numpy_helper.from_array(rng.integers(0, 256, (2, 3, 3, 3)).astype(np.uint8),
                                     "cw"),
             numpy_helper.from_array(np.array(7, np.uint8), "cwz")]
    nodes = [node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"]),
             node("MatMulInteger", ["a", "b", "az", "bz"], ["mi"]),
             node("ConvInteger", ["img", "cw", "az", "cwz"], ["ci"], pads=[0, 1, 0, 1])]
    img = rng.integers(0, 256, (1, 3, 5, 5)).astype(np.uint8)
    model = make_model(nodes, {"a": a, "img": img},
                       [("y", TP.UINT8), ("mi", TP.INT32), ("ci", TP.INT32)], 10, inits=inits)
    compare_with_ort(bnfold, model, {"a": a, "img": img}, tmp_path)


# ---------------------------------------------------------------------------
# detection

@pytest.mark.parametrize("center,max_boxes", [(0, 25), (1, 25), (0, 2**63 - 1)])
def test_non_max_suppression_random_boxes(bnfold, ort, tmp_path, center, max_boxes):
    # torchvision's exports ask for INT64_MAX boxes per class: "all".
    rng = np.random.default_rng(20 + center)
    n = 200
    xy = rng.uniform(0, 50, (2, n, 2))
    wh = rng.uniform(2, 15, (2, n, 2))
    if center:
        boxes = np.concatenate([xy, wh], axis=2)
    else:  # y1, x1, y2, x2 with some corners given the other way round
        boxes = np.concatenate([xy[..., ::-1], (xy + wh)[..., ::-1]], axis=2)
        boxes[:, ::3] = boxes[:, ::3][..., [2, 3, 0, 1]]
    boxes = boxes.astype(np.float32)
    scores = rng.uniform(0, 1, (2, 3, n)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([max_boxes], np.int64), "max"),
             numpy_helper.from_array(np.array([0.4], np.float32), "iou"),
             numpy_helper.from_array(np.array([0.2], np.float32), "thr")]
    model = make_model([node("NonMaxSuppression", ["boxes", "scores", "max", "iou", "thr"],
                             ["sel"], center_point_box=center)],
                       {"boxes": boxes, "scores": scores}, [("sel", TP.INT64)], 11,
                       inits=inits)
    got = compare_with_ort(bnfold, model, {"boxes": boxes, "scores": scores}, tmp_path)
    assert 0 < got["sel"].shape[0] <= 2 * 3 * min(max_boxes, n)


@pytest.mark.parametrize("mode,trans,ratio", [("avg", "half_pixel", 0),
                                              ("avg", "output_half_pixel", 2),
                                              ("max", "half_pixel", 2),
                                              ("max", "output_half_pixel", 0)])
def test_roi_align(bnfold, ort, tmp_path, mode, trans, ratio):
    rng = np.random.default_rng(30)
    x = rng.standard_normal((2, 3, 12, 10)).astype(np.float32)
    rois = np.array([[0, 0, 9, 11], [1.5, 2.2, 6.1, 7.9], [-2, -1, 3, 4], [4, 4, 20, 15],
                     [3, 5, 3.4, 5.2]], np.float32)
    bi = np.array([0, 1, 0, 1, 1], np.int64)
    model = make_model([node("RoiAlign", ["x", "rois", "bi"], ["y"], mode=mode,
                             coordinate_transformation_mode=trans, output_height=3,
                             output_width=4, sampling_ratio=ratio, spatial_scale=0.8)],
                       {"x": x, "rois": rois, "bi": bi}, [("y", TP.FLOAT)], 16)
    compare_with_ort(bnfold, model, {"x": x, "rois": rois, "bi": bi}, tmp_path)


@pytest.mark.parametrize("largest", [0, 1])
def test_topk_with_ties(bnfold, ort, tmp_path, largest):
    rng = np.random.default_rng(40)
    x = rng.integers(0, 6, (3, 50, 4)).astype(np.float32)  # many ties
    k = numpy_helper.from_array(np.array([7], np.int64), "k")
    model = make_model([node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)],
                       {"x": x}, [("v", TP.FLOAT), ("i", TP.INT64)], 11, inits=[k])
    compare_with_ort(bnfold, model, {"x": x}, tmp_path)


# ---------------------------------------------------------------------------
# recurrent layers

@pytest.mark.parametrize("op,extra", [("LSTM", {}), ("LSTM", {"input_forget": 1}),
                                      ("GRU", {"linear_before_reset": 0}),
                                      ("GRU", {"linear_before_reset": 1}), ("RNN", {})])
def test_recurrent_bidirectional_with_lengths(bnfold, ort, tmp_path, op, extra):
    rng = np.random.default_rng(50)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    seq, batch, inp, hid = 5, 3, 4, 6
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    inits = [numpy_helper.from_array(
                 (rng.standard_normal((2, gates * hid, inp)) * 0.5).astype(np.float32), "W"),
             numpy_helper.from_array(
                 (rng.standard_normal((2, gates * hid, hid)) * 0.5).astype(np.float32), "R"),
             numpy_helper.from_array(
                 (rng.standard_normal((2, 2 * gates * hid)) * 0.3).astype(np.float32), "B"),
             numpy_helper.from_array(np.array([5, 3, 1], np.int32), "lens"),
             numpy_helper.from_array(
                 rng.standard_normal((2, batch, hid)).astype(np.float32), "h0")]
    ins = ["x", "W", "R", "B", "lens", "h0"]
    outs = [("y", TP.FLOAT), ("yh", TP.FLOAT)]
    if op == "LSTM":
        inits.append(numpy_helper.from_array(
            rng.standard_normal((2, batch, hid)).astype(np.float32), "c0"))
        ins.append("c0")
        outs.append(("yc", TP.FLOAT))
    model = make_model([node(op, ins, [n for n, _ in outs], hidden_size=hid,
                             direction="bidirectional", **extra)],
                       {"x": x}, outs, 14, inits=inits)
    compare_with_ort(bnfold, model, {"x": x}, tmp_path, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# sampling

@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("pad", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample(bnfold, ort, tmp_path, mode, pad, align):
    rng = np.random.default_rng(60)
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    # Coordinates beyond the edges, and none exactly on a pixel centre or
    # a rounding boundary.
    grid = (rng.uniform(-1.6, 1.6, (1, 4, 7, 2)) + 1e-3).astype(np.float32)
    model = make_model([node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=pad,
                             align_corners=align)],
                       {"x": x, "grid": grid}, [("y", TP.FLOAT)], 16)
    compare_with_ort(bnfold, model, {"x": x, "grid": grid}, tmp_path, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners",
                                   "asymmetric"])
@pytest.mark.parametrize("scale", [2.5, 0.5])
@pytest.mark.parametrize("exclude", [0, 1])
def test_resize_cubic(bnfold, ort, tmp_path, coord, scale, exclude):
    # Whole output lengths: where in * scale is fractional, align_corners
    # divides by it in ONNX's reference (and bnfold) but by its floor in
    # onnxruntime.
    rng = np.random.default_rng(70)
    x = rng.standard_normal((1, 2, 6, 8)).astype(np.float32)
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    model = make_model([node("Resize", ["x", "", "scales"], ["y"], mode="cubic",
                             coordinate_transformation_mode=coord, exclude_outside=exclude,
                             cubic_coeff_a=-0.5)],
                       {"x": x}, [("y", TP.FLOAT)], 13, inits=[scales])
    compare_with_ort(bnfold, model, {"x": x}, tmp_path, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# control flow

def test_loop_with_scan_outputs_and_nested_if(bnfold, ort, tmp_path):
    """Loop (M and cond) carrying a value, a scan output, a body that reads an
    outer value and holds an If whose branches read outer values too; the
    loop stops on its condition before M."""
    f = TP.FLOAT
    then_g = helper.make_graph([helper.make_node("Mul", ["h_in", "w"], ["t"], name="mul")],
                               "then", [], [helper.make_tensor_value_info("t", f, None)])
    else_g = helper.make_graph([helper.make_node("Sub", ["h_in", "w"], ["e"], name="sub")],
                               "else", [], [helper.make_tensor_value_info("e", f, None)])
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], name="cast", to=TP.FLOAT),
         helper.make_node("Less", ["fi", "half"], ["early"], name="less"),
         helper.make_node("If", ["early"], ["h_if"], name="if", then_branch=then_g,
                          else_branch=else_g),
         helper.make_node("Add", ["h_if", "fi"], ["h_out"], name="add"),
         helper.make_node("ReduceSum", ["h_out"], ["s"], name="rs", keepdims=0),
         helper.make_node("Less", ["s", "limit"], ["go"], name="cmp")],
        "body",
        [helper.make_tensor_value_info("i", TP.INT64, []),
         helper.make_tensor_value_info("c", TP.BOOL, []),
         helper.make_tensor_value_info("h_in", f, [3])],
        [helper.make_tensor_value_info("go", TP.BOOL, []),
         helper.make_tensor_value_info("h_out", f, [3]),
         helper.make_tensor_value_info("s", f, [])])
    inits = [numpy_helper.from_array(np.array(10, np.int64), "M"),
             numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.array(3.0, np.float32), "half"),
             numpy_helper.from_array(np.array(40.0, np.float32), "limit")]
    x = np.array([0.5, 1.0, 1.5], np.float32)
    w = np.array([2.0, 1.5, 1.25], np.float32)
    model = make_model([helper.make_node("Loop", ["M", "cond", "x"], ["h", "sums"], name="loop",
                                         body=body)],
                       {"x": x, "w": w}, [("h", f), ("sums", f)], 13, inits=inits)
    got = compare_with_ort(bnfold, model, {"x": x, "w": w}, tmp_path)
    assert 0 < got["sums"].shape[0] < 10  # stopped by the condition


def test_scan_reverse_axes(bnfold, ort, tmp_path):
    f = TP.FLOAT
    body = helper.make_graph(
        [helper.make_node("Add", ["acc", "a"], ["acc2"], name="add"),
         helper.make_node("Mul", ["acc2", "b"], ["out"], name="mul")],
        "body",
        [helper.make_tensor_value_info("acc", f, [3]),
         helper.make_tensor_value_info("a", f, [3]),
         helper.make_tensor_value_info("b", f, [3])],
        [helper.make_tensor_value_info("acc2", f, [3]),
         helper.make_tensor_value_info("out", f, [3])])
    rng = np.random.default_rng(80)
    s0 = np.zeros(3, np.float32)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    model = make_model([helper.make_node("Scan", ["s0", "a", "b"], ["s", "ys"], name="scan",
                                         body=body, num_scan_inputs=2,
                                         scan_input_axes=[0, 1], scan_input_directions=[1, 0],
                                         scan_output_axes=[1], scan_output_directions=[1])],
                       {"s0": s0, "a": a, "b": b}, [("s", f), ("ys", f)], 16)
    compare_with_ort(bnfold, model, {"s0": s0, "a": a, "b": b}, tmp_path)


# ---------------------------------------------------------------------------
# indexing

def test_scatter_and_gather_variants(bnfold, ort, tmp_path):
    rng = np.random.default_rng(90)
    data = rng.standard_normal((4, 5, 3)).astype(np.float32)
    ind_nd = np.array([[[1, 2]], [[3, 0]], [[1, 2]]], np.int64)      # repeats: reductions
    upd_nd = rng.standard_normal((3, 1, 3)).astype(np.float32)
    ind_el = rng.integers(-4, 4, (2, 5, 3)).astype(np.int64)
    upd_el = rng.standard_normal((2, 5, 3)).astype(np.float32)
    gnd = np.array([[[1, 2], [0, 0]], [[2, 4], [3, 1]]], np.int64)
    nodes = [node("ScatterND", ["data", "ind_nd", "upd_nd"], ["snd"], reduction="mul"),
             helper.make_node("ScatterElements", ["data", "ind_el", "upd_el"], ["sel"],
                              name="se", axis=0, reduction="add"),
             helper.make_node("GatherND", ["data", "gnd"], ["gnd_out"], name="gn",
                              batch_dims=0)]
    inputs = {"data": data, "ind_nd": ind_nd, "upd_nd": upd_nd, "ind_el": ind_el,
              "upd_el": upd_el, "gnd": gnd}
    model = make_model(nodes, inputs, [("snd", TP.FLOAT), ("sel", TP.FLOAT),
                                       ("gnd_out", TP.FLOAT)], 16)
    compare_with_ort(bnfold, model, inputs, tmp_path)


@pytest.mark.parametrize("sorted_,axis", [(1, None), (0, None), (1, 1), (0, 0)])
def test_unique(bnfold, ort, tmp_path, sorted_, axis):
    rng = np.random.default_rng(100)
    x = rng.integers(0, 3, (6, 4)).astype(np.float32)
    attrs = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    outs = [("y", TP.FLOAT), ("first", TP.INT64), ("inverse", TP.INT64), ("counts", TP.INT64)]
    model = make_model([node("Unique", ["x"], [n for n, _ in outs], **attrs)], {"x": x}, outs,
                       11)
    compare_with_ort(bnfold, model, {"x": x}, tmp_path)


# ---------------------------------------------------------------------------
# numpy references

@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("ii->i", [(4, 4)]), ("ij->", [(3, 5)]), ("...ij,...jk->...ik", [(2, 1, 3, 4), (3, 4, 2)]),
    ("ij,jk", [(2, 3), (3, 4)]), ("i,i->", [(6,), (6,)]), ("bhqd,bhkd->bhqk",
                                                            [(1, 2, 3, 4), (1, 2, 5, 4)]),
])
def test_einsum_against_numpy(bnfold, tmp_path, eq, shapes):
    rng = np.random.default_rng(110)
    inputs = {"x%d" % k: rng.standard_normal(s).astype(np.float64)
              for k, s in enumerate(shapes)}
    model = make_model([node("Einsum", list(inputs), ["y"], equation=eq)], inputs,
                       [("y", TP.DOUBLE)], 12)
    got, _ = bnfold_run(bnfold, model, inputs, tmp_path)
    np.testing.assert_allclose(got["y"], np.einsum(eq, *inputs.values()), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum_against_numpy(bnfold, tmp_path, exclusive, reverse):
    x = np.arange(1, 25, dtype=np.int64).reshape(2, 3, 4) * np.array([1, -1, 2, -2], np.int64)
    axis = numpy_helper.from_array(np.array(1, np.int32), "axis")
    model = make_model([node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive,
                             reverse=reverse)], {"x": x}, [("y", TP.INT64)], 14, inits=[axis])
    got, _ = bnfold_run(bnfold, model, {"x": x}, tmp_path)
    v = x[:, ::-1] if reverse else x
    want = np.cumsum(v, axis=1) - (v if exclusive else 0)
    np.testing.assert_array_equal(got["y"], want[:, ::-1] if reverse else want)


def test_integer_types_against_numpy(bnfold, tmp_path):
    """uint64 above 2^63 compares, divides and takes its maximum unsigned;
    int16 and uint32 wrap as numpy does; Mod (fmod=0) takes the divisor's
    sign."""
    a = np.array([2**64 - 5, 3, 2**63 + 1, 7], np.uint64)
    b = np.array([7, 2**63, 2**63, 2**64 - 1], np.uint64)
    c = np.array([30000, -30000, 12345, -1], np.int16)
    d = np.array([2**32 - 1, 5, 0, 2**31], np.uint32)
    m = np.array([-7, 7, -7, 7], np.int32)
    n = np.array([3, -3, -3, 3], np.int32)
    nodes = [node("Greater", ["a", "b"], ["gt"]), node("Div", ["a", "b"], ["div"]),
             node("Max", ["a", "b"], ["max"]), helper.make_node("Add", ["c", "c"], ["c2"]),
             helper.make_node("Mul", ["d", "d"], ["d2"]), node("Mod", ["m", "n"], ["mod"])]
    inputs = {"a": a, "b": b, "c": c, "d": d, "m": m, "n": n}
    model = make_model(nodes, inputs, [("gt", TP.BOOL), ("div", TP.UINT64), ("max", TP.UINT64),
                                       ("c2", TP.INT16), ("d2", TP.UINT32), ("mod", TP.INT32)],
                       13)
    got, _ = bnfold_run(bnfold, model, inputs, tmp_path)
    np.testing.assert_array_equal(got["gt"], a > b)
    np.testing.assert_array_equal(got["div"], a // b)
    np.testing.assert_array_equal(got["max"], np.maximum(a, b))
    np.testing.assert_array_equal(got["c2"], c + c)
    np.testing.assert_array_equal(got["d2"], d * d)
    np.testing.assert_array_equal(got["mod"], np.mod(m, n))
