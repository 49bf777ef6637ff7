"""The evaluator's operators that split their planes, rows or elements
across threads (src/eval/parallel.c): BatchNormalization, Relu, MaxPool,
Resize (nearest and linear), Add, and Conv's bias. Each piece is computed
as one thread would compute it, so -j 1 and -j 4 must give the same bytes,
and both must match numpy. The sizes give every op several pieces of
about 64 Ki elements, so the ranges really are cut (a tensor below that
runs on one thread).
"""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import describe, run

C, H = 16, 128  # X is 1 x C x H x H: 256 Ki elements


def ulps32(a, b):
    """Largest distance in float32 units in the last place."""
    def ordered(v):
        bits = np.asarray(v, dtype=np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return int(np.max(np.abs(ordered(a) - ordered(b))))


def make_model(path, rng, resize_mode):
    """X -> BN -> Relu (R) -> MaxPool 3x3/2 pad 1 -> Resize x2 -> + R = Y;
    Conv 3x3 pad 1 with bias on X = Z."""
    gamma = rng.uniform(0.5, 1.5, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    mean = rng.standard_normal(C).astype(np.float32)
    var = rng.uniform(0.5, 2.0, C).astype(np.float32)
    w = (rng.standard_normal((C, C, 3, 3)) * 0.1).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    scales = np.array([1, 1, 2, 2], dtype=np.float32)
    resize_attrs = {"mode": resize_mode, "coordinate_transformation_mode": "asymmetric"}
    if resize_mode == "nearest":
        resize_attrs["nearest_mode"] = "floor"
    nodes = [
        helper.make_node("BatchNormalization", ["X", "g", "b", "m", "v"], ["N"], epsilon=1e-5),
        helper.make_node("Relu", ["N"], ["R"]),
        helper.make_node("MaxPool", ["R"], ["P"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["P", "", "s"], ["U"], **resize_attrs),
        helper.make_node("Add", ["U", "R"], ["Y"]),
        helper.make_node("Conv", ["X", "W", "B"], ["Z"], pads=[1, 1, 1, 1]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((gamma, "g"), (beta, "b"), (mean, "m"), (var, "v"), (w, "W"), (bias, "B"),
              (scales, "s"))]
    shape = [1, C, H, H]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("Z", TensorProto.FLOAT, shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return gamma, beta, mean, var, w, bias


def reference(x, gamma, beta, mean, var, w, bias, resize_mode):
    """numpy: each step in float64, rounded to float32 where the spec's
    float32 tensors are."""
    x64 = x.astype(np.float64)
    c = (slice(None), None, None)
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + np.float64(np.float32(1e-5)))
    n = ((x64[0] - mean.astype(np.float64)[c]) * scale[c] + beta.astype(np.float64)[c])
    r = np.maximum(n.astype(np.float32), np.float32(0))
    padded = np.pad(r, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    p = win[:, ::2, ::2].max(axis=(3, 4))
    if resize_mode == "nearest":
        u = p.repeat(2, axis=1).repeat(2, axis=2)
    else:
        # asymmetric: output i reads input i / 2, the last index clamped
        src = np.arange(H) / 2.0
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, H // 2 - 1)
        f = src - lo
        p64 = p.astype(np.float64)
        rows = p64[:, lo, :] * (1 - f)[None, :, None] + p64[:, hi, :] * f[None, :, None]
        u = (rows[:, :, lo] * (1 - f)[None, None, :] +
             rows[:, :, hi] * f[None, None, :]).astype(np.float32)
    y = (u + r).astype(np.float32)
    xp = np.pad(x64[0], ((0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
    z = np.einsum("chwij,ocij->ohw", cols, w.astype(np.float64)) + bias.astype(np.float64)[c]
    return y[None], z[None]


def run_outputs(bnfold, model, x, tmp_path, threads):
    inp = str(tmp_path / "x.npy")
    np.save(inp, x)
    out = tmp_path / ("out-j%s" % threads)
    out.mkdir()
    proc = run(bnfold, ["-q", "-j", threads, "--run", model, "--input", "X=" + inp,
                        "--output-dir", str(out)])
    assert proc.returncode == 0, describe(proc)
    res = {}
    for name in ("Y", "Z"):
        t = onnx.TensorProto()
        with open(str(out / (name + ".pb")), "rb") as f:
            t.ParseFromString(f.read())
        res[name] = numpy_helper.to_array(t)
    return res


@pytest.mark.parametrize("resize_mode", ["nearest", "linear"])
def test_split_ops_match_numpy_and_each_other(bnfold, tmp_path, resize_mode):
    rng = np.random.default_rng(14)
    model = str(tmp_path / "m.onnx")
    params = make_model(model, rng, resize_mode)
    x = rng.standard_normal((1, C, H, H)).astype(np.float32)
    one = run_outputs(bnfold, model, x, tmp_path, "1")
    four = run_outputs(bnfold, model, x, tmp_path, "4")
    for name in ("Y", "Z"):
        assert one[name].tobytes() == four[name].tobytes(), \
            "%s differs between -j 1 and -j 4" % name
    y, z = reference(x, *params, resize_mode)
    # BN, Relu, MaxPool, nearest Resize and Add round once each, as numpy
    # does here; linear Resize's sum may round differently by an ulp.
    assert ulps32(one["Y"], y) <= (0 if resize_mode == "nearest" else 2), \
        "Y: %d ulp from numpy" % ulps32(one["Y"], y)
    # Conv sums 144 products in float32: a normalised error, not bits.
    err = np.sum((one["Z"] - z) ** 2) / np.sum(z ** 2)
    assert err < 1e-12, "Z: normalised error %g" % err
