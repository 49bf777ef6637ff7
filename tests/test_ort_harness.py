"""Self-checks for the onnxruntime reference runner (tests/ort/run.js).

Each model here is built by hand with onnx.helper and its expected output is
computed independently with numpy, so a passing run shows that the runner
feeds inputs and returns outputs faithfully.  Nothing here involves bnfold.
"""

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ortutil  # noqa: E402

OPSET = 13
RTOL = 1e-5
ATOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def _need_ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available, onnxruntime harness cannot run")


def _save(tmp_path, graph, name="m.onnx"):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7  # readable by onnx 1.12 and every ORT release
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


def _conv2d_ref(x, w, b, stride, pad):
    """Plain NCHW convolution (group 1, no dilation) in float64."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, m, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,mc->nmhw", patch, w[:, :, i, j])
    return out + b.reshape(1, m, 1, 1)


def test_conv_relu_float32(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3],
                          strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2, 4, 5, 5))],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    got = ortutil.run_ort(_save(tmp_path, graph), {"x": x})
    assert list(got) == ["y"]
    want = np.maximum(_conv2d_ref(x, w, b, stride=2, pad=1), 0.0)
    assert got["y"].dtype == np.float32
    assert got["y"].shape == want.shape
    np.testing.assert_allclose(got["y"], want, rtol=RTOL, atol=ATOL)


def test_add_float16(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 5)).astype(np.float16)
    c = rng.standard_normal((1, 5)).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "c"], ["y"])],
        "add_fp16",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT16, a.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, a.shape)],
        initializer=[numpy_helper.from_array(c, "c")])
    got = ortutil.run_ort(_save(tmp_path, graph), {"a": a})
    assert got["y"].dtype == np.float16
    # A single correctly rounded half-precision add: numpy must agree exactly.
    np.testing.assert_array_equal(got["y"], a + c)


def test_batchnorm_inference_formula(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    scale, bias, mean = (rng.standard_normal(4).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    eps = 1e-3
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=eps)],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
        initializer=[numpy_helper.from_array(t, n) for t, n in
                     ((scale, "s"), (bias, "b"), (mean, "m"), (var, "v"))])
    got = ortutil.run_ort(_save(tmp_path, graph), {"x": x})
    col = lambda t: t.astype(np.float64).reshape(1, -1, 1, 1)  # noqa: E731
    want = (x - col(mean)) / np.sqrt(col(var) + eps) * col(scale) + col(bias)
    np.testing.assert_allclose(got["y"], want, rtol=RTOL, atol=ATOL)


def test_dtypes_and_output_order(tmp_path):
    # Outputs are deliberately listed in an order different from the inputs.
    arrays = {
        "f64": np.linspace(-2, 2, 6).reshape(2, 3),
        "i64": np.array([[-(2 ** 40), 7, 2 ** 62]], dtype=np.int64),
        "i32": np.arange(-3, 3, dtype=np.int32),
        "flag": np.array([True, False, True]),
        "u8": np.array([0, 128, 255], dtype=np.uint8),
        "scalar": np.array(1.25, dtype=np.float32),
    }
    kinds = {np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.int64): TensorProto.INT64,
             np.dtype(np.int32): TensorProto.INT32, np.dtype(np.bool_): TensorProto.BOOL,
             np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.float32): TensorProto.FLOAT}
    order = ["scalar", "u8", "flag", "i32", "i64", "f64"]
    graph = helper.make_graph(
        [helper.make_node("Identity", [n], ["out_" + n]) for n in order],
        "passthrough",
        [helper.make_tensor_value_info(n, kinds[a.dtype], a.shape) for n, a in arrays.items()],
        [helper.make_tensor_value_info("out_" + n, kinds[arrays[n].dtype], arrays[n].shape)
         for n in order])
    got = ortutil.run_ort(_save(tmp_path, graph), arrays)
    assert list(got) == ["out_" + n for n in order]
    for n in order:
        out = got["out_" + n]
        assert out.dtype == arrays[n].dtype, n
        assert out.shape == arrays[n].shape, n
        np.testing.assert_array_equal(out, arrays[n])


def test_errors_are_reported(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2,))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (2,))])
    path = _save(tmp_path, graph)
    with pytest.raises(ortutil.OrtError, match="no value given for input"):
        ortutil.run_ort(path, {})
    with pytest.raises(ortutil.OrtError, match="has no input 'nope'"):
        ortutil.run_ort(path, {"x": np.zeros(2, np.float32), "nope": np.zeros(2, np.float32)})
    # Wrong element type: onnxruntime itself must refuse it.
    with pytest.raises(ortutil.OrtError):
        ortutil.run_ort(path, {"x": np.zeros(2, np.float64)})
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ortutil.OrtError):
        ortutil.run_ort(str(bad), {"x": np.zeros(2, np.float32)})
