"""The evaluator's one-row products (src/eval/gemv.c) and weights read where
they lie in the model file.

A batch-1 Gemm or MatMul reads B once, in place, instead of packing it for
the blocked multiply; it must sum every element in the multiply's order, so
its row is bit for bit the one the multiply gives when A has more rows. The
tests compare with numpy (tolerance) and, for the bits, a one-row A with a
seven-row A whose first row is the same (seven rows take the blocked
multiply). Sizes straddle the k blocks (256) and the column groups (8 stored
rows, 64 columns). Weights are also placed at every offset modulo 8 in the
file, so the evaluator reads them unaligned.
"""

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import describe, run

NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
TOL = {TensorProto.FLOAT: (2e-5, 2e-5), TensorProto.DOUBLE: (1e-12, 1e-12)}


def gemm_model(path, m, k, n, dt, trans_b, alpha=1.0, beta=1.0, c_shape=None, seed=0,
               node_name="gemm"):
    """A Gemm model Y = alpha * A x B' + beta * C with B (and C) initializers;
    returns (b, c) as numpy arrays."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(NP[dt])
    inits = [numpy_helper.from_array(b, "B")]
    inputs = ["A", "B"]
    c = None
    if c_shape is not None:
        c = rng.standard_normal(c_shape).astype(NP[dt])
        inits.append(numpy_helper.from_array(c, "C"))
        inputs.append("C")
    node = helper.make_node("Gemm", inputs, ["Y"], name=node_name, transB=int(trans_b),
                            alpha=alpha, beta=beta)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", dt, [m, k])],
                              [helper.make_tensor_value_info("Y", dt, [m, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return b, c


def matmul_model(path, m, k, n, dt, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((k, n)).astype(NP[dt])
    node = helper.make_node("MatMul", ["A", "B"], ["Y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", dt, [m, k])],
                              [helper.make_tensor_value_info("Y", dt, [m, n])],
                              [numpy_helper.from_array(b, "B")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return b


def run_y(bnfold, model, a, tmp_path, threads="1"):
    """bnfold --run on input A; the raw bytes of Y and Y as an array."""
    tag = "%s-%d-j%s" % (os.path.basename(model), len(os.listdir(tmp_path)), threads)
    inp = str(tmp_path / (tag + ".npy"))
    out = tmp_path / (tag + "-out")
    out.mkdir()
    np.save(inp, a)
    proc = run(bnfold, ["-q", "-j", threads, "--run", model, "--input", "A=" + inp,
                        "--output-dir", str(out)])
    assert proc.returncode == 0, describe(proc)
    t = onnx.TensorProto()
    with open(str(out / "Y.pb"), "rb") as f:
        t.ParseFromString(f.read())
    y = numpy_helper.to_array(t)
    return y.tobytes(), y


SIZES = [(1, 1), (7, 3), (255, 9), (256, 64), (257, 65), (600, 130)]


@pytest.mark.parametrize("dt", [TensorProto.FLOAT, TensorProto.DOUBLE])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("k,n", SIZES)
def test_one_row_gemm_matches_numpy_and_the_many_row_bits(bnfold, tmp_path, dt, trans_b, k, n):
    model = str(tmp_path / "g.onnx")
    b, _ = gemm_model(model, "M", k, n, dt, trans_b)
    rng = np.random.default_rng(k * 1000 + n)
    a7 = rng.standard_normal((7, k)).astype(NP[dt])
    bits1, y1 = run_y(bnfold, model, a7[:1], tmp_path)
    bits7, y7 = run_y(bnfold, model, a7, tmp_path, threads="2")
    want = a7[:1].astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    np.testing.assert_allclose(y1, want, rtol=TOL[dt][0], atol=TOL[dt][1])
    assert bits1 == bits7[:len(bits1)], "one-row Gemm differs in bits from the multiply's row"
    # The thread count does not change the bits either.
    assert run_y(bnfold, model, a7[:1], tmp_path, threads="2")[0] == bits1


@pytest.mark.parametrize("dt", [TensorProto.FLOAT, TensorProto.DOUBLE])
@pytest.mark.parametrize("k,n", [(5, 70), (300, 129)])
def test_one_row_matmul_matches_numpy_and_the_many_row_bits(bnfold, tmp_path, dt, k, n):
    model = str(tmp_path / "mm.onnx")
    b = matmul_model(model, 1, k, n, dt)
    model7 = str(tmp_path / "mm7.onnx")
    matmul_model(model7, 7, k, n, dt)
    a7 = np.random.default_rng(n).standard_normal((7, k)).astype(NP[dt])
    bits1, y1 = run_y(bnfold, model, a7[:1], tmp_path)
    bits7, _ = run_y(bnfold, model7, a7, tmp_path)
    np.testing.assert_allclose(y1, a7[:1].astype(np.float64) @ b.astype(np.float64),
                               rtol=TOL[dt][0], atol=TOL[dt][1])
    assert bits1 == bits7[:len(bits1)]


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha,beta,c_shape",
                         [(0.5, 2.0, (70,)), (1.0, 1.0, (1, 70)), (-1.5, 0.25, (1, 1)),
                          (1.0, -1.0, (1,)), (2.0, 0.0, None)])
def test_one_row_gemm_alpha_beta_and_bias_broadcast(bnfold, tmp_path, trans_b, alpha, beta,
                                                    c_shape):
    dt = TensorProto.FLOAT
    model = str(tmp_path / "g.onnx")
    b, c = gemm_model(model, 1, 300, 70, dt, trans_b, alpha, beta, c_shape)
    a = np.random.default_rng(3).standard_normal((1, 300)).astype(np.float32)
    _, y = run_y(bnfold, model, a, tmp_path)
    want = alpha * (a.astype(np.float64) @ (b.T if trans_b else b).astype(np.float64))
    if c is not None:
        want = want + beta * c.astype(np.float64)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def payload_offset(path, b):
    """Offset of B's raw bytes in the model file."""
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(b.tobytes())
    assert at >= 0
    return at


@pytest.mark.parametrize("dt", [TensorProto.FLOAT, TensorProto.DOUBLE])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_unaligned_weights_read_in_place(bnfold, tmp_path, dt, trans_b):
    """The same Gemm with B's bytes at each offset modulo 8 in the file (the
    node's name before it grows by one byte at a time): the same bits each time,
    with one row (read in place) and with seven (packed)."""
    offsets, results = set(), set()
    a7 = np.random.default_rng(5).standard_normal((7, 270)).astype(NP[dt])
    for pad in range(8):
        model = str(tmp_path / ("u%d.onnx" % pad))
        b, _ = gemm_model(model, "M", 270, 90, dt, trans_b, c_shape=(90,),
                          node_name="n" + "x" * pad)
        offsets.add(payload_offset(model, b) % 8)
        bits1, _ = run_y(bnfold, model, a7[:1], tmp_path)
        bits7, y7 = run_y(bnfold, model, a7, tmp_path)
        assert bits1 == bits7[:len(bits1)]
        results.add(bits7)
    assert offsets == set(range(8)), "the payloads did not cover every alignment"
    assert len(results) == 1, "the result depends on where B lies in the file"


def conv_model(path, dt, node_name, cin=5, cout=7, ksize=3):
    rng = np.random.default_rng(11)
    w = rng.standard_normal((cout, cin, ksize, ksize)).astype(NP[dt])
    bias = rng.standard_normal(cout).astype(NP[dt])
    node = helper.make_node("Conv", ["A", "W", "bias"], ["Y"], name=node_name, pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("A", dt, [1, cin, 9, 11])],
                              [helper.make_tensor_value_info("Y", dt, None)],
                              [numpy_helper.from_array(w, "W"),
                               numpy_helper.from_array(bias, "bias")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return w, bias


@pytest.mark.parametrize("dt", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_unaligned_conv_weights(bnfold, tmp_path, dt):
    """Conv weights at every offset modulo 8: the same bits, near numpy."""
    offsets, results = set(), set()
    a = np.random.default_rng(2).standard_normal((1, 5, 9, 11)).astype(NP[dt])
    for pad in range(8):
        model = str(tmp_path / ("c%d.onnx" % pad))
        w, bias = conv_model(model, dt, "n" + "x" * pad)
        offsets.add(payload_offset(model, w) % 8)
        bits, y = run_y(bnfold, model, a, tmp_path)
        results.add(bits)
    assert offsets == set(range(8))
    assert len(results) == 1
    xp = np.pad(a.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 7, 9, 11))
    for i in range(9):
        for j in range(11):
            want[0, :, i, j] = np.einsum("ocyx,cyx->o", w.astype(np.float64),
                                         xp[0, :, i:i + 3, j:j + 3])
    want += bias.astype(np.float64)[None, :, None, None]
    np.testing.assert_allclose(y, want, rtol=TOL[dt][0] * 10, atol=TOL[dt][1] * 10)


def conv_bn_model(path, cin, cout, node_name):
    """Conv (3x3, pads 1) then BatchNormalization, float32, the weights'
    offset in the file set by the Conv's name."""
    rng = np.random.default_rng(13)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    scale, bias, mean = (rng.uniform(0.5, 1.5, cout).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, cout).astype(np.float32)
    nodes = [helper.make_node("Conv", ["A", "W"], ["t"], name=node_name, pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["t", "s", "b", "m", "v"], ["Y"],
                              epsilon=1e-5)]
    inits = [numpy_helper.from_array(a, n)
             for a, n in [(w, "W"), (scale, "s"), (bias, "b"), (mean, "m"), (var, "v")]]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, cin, 6, 7])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return w, scale, bias, mean, var


@pytest.mark.parametrize("pad", [0, 1, 2, 3])
def test_float64_reference_reads_float32_conv_weights(bnfold, tmp_path, pad):
    """The check's float64 reference keeps Conv weights float32 and widens
    them block by block: its error of the original against the exact
    result must be what numpy's float64 gives (40 input channels: k spans
    two blocks; 13 outputs: whole and edge row panels)."""
    cin, cout = 40, 13
    model = str(tmp_path / "cb.onnx")
    w, scale, bias, mean, var = conv_bn_model(model, cin, cout, "n" + "x" * pad)
    a = np.random.default_rng(pad).standard_normal((1, cin, 6, 7)).astype(np.float32)
    inp = str(tmp_path / "a.npy")
    np.save(inp, a)
    proc = run(bnfold, ["-n", "-q", "-j", "2", "--json", "-", "--input", "A=" + inp, model])
    assert proc.returncode == 0, describe(proc)
    got = json.loads(proc.stdout)["check"]["outputs"][0]["original_max_abs"]
    _, y32 = run_y(bnfold, model, a, tmp_path)
    xp = np.pad(a.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((1, cout, 6, 7))
    for i in range(6):
        for j in range(7):
            conv[0, :, i, j] = np.einsum("ocyx,cyx->o", w.astype(np.float64),
                                         xp[0, :, i:i + 3, j:j + 3])
    c = lambda v: v.astype(np.float64)[None, :, None, None]  # noqa: E731
    eps = np.float64(np.float32(1e-5))
    exact = (conv - c(mean)) / np.sqrt(c(var) + eps) * c(scale) + c(bias)
    want = np.max(np.abs(y32.astype(np.float64) - exact))
    assert want > 0
    # Both references round in float64 (to about 1e-16 of the outputs); a
    # weight misread would be off by the outputs' own size.
    assert abs(got - want) <= 1e-12 * np.max(np.abs(exact)), (got, want)
