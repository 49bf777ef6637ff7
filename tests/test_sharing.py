"""The check's reference shares the input's bytes (issue 14): the tree the
check evaluates as the original borrows the weights of the mapped input
(those aligned for their type; the others are copied), so weights the fold
leaves alone are held once. Sharing must not change what is written nor
what is compared: the unchanged weights come out byte for byte as the input
has them, the folded ones as numpy computes them, from a file, from a pipe
and onto another file system alike, and a check that must fail still fails
and writes nothing."""

import os
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from conftest import assert_close_ulp, describe, run

RE_VERIFIED = re.compile(r"^bnfold: verified: .* \((?P<mode>graph|per fold)[,)]", re.M)
EPS = 1e-5


def raw_offset(data, t):
    """Where tensor t's raw_data payload starts in the serialized model."""
    at = data.find(t.raw_data)
    assert at > 0 and data.find(t.raw_data, at + 1) < 0
    return at


def model_bytes(misalign):
    """Conv -> BN -> Flatten -> Gemm -> Gemm, every weight above bnfold's
    4096-byte borrowing threshold. The two Gemm weights, which no fold
    touches, start at an offset that is a multiple of 4 (viewed in place)
    and one that is not (copied) when misalign is 1; doc strings are
    padded until they do. Returns (bytes, the model)."""
    rng = np.random.default_rng(14)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    g1 = (rng.standard_normal((16 * 6 * 6, 32)) * 0.05).astype(np.float32)
    g2 = (rng.standard_normal((32, 40)) * 0.1).astype(np.float32)
    bn = [rng.uniform(0.5, 2, 16), rng.standard_normal(16), rng.standard_normal(16),
          rng.uniform(0.5, 2, 16)]
    for pad1 in range(4):
        for pad2 in range(4):
            n1, n2 = "G1", "G2"
            inits = [numpy_helper.from_array(w, "W"),
                     numpy_helper.from_array(g1, n1),
                     numpy_helper.from_array(np.zeros(32, np.float32), "c1"),
                     numpy_helper.from_array(g2, n2)]
            # A tensor's doc_string follows its raw_data: it moves the
            # tensors after it by one byte per character.
            inits[0].doc_string, inits[1].doc_string = "d" * pad1, "d" * pad2
            inits += [numpy_helper.from_array(v.astype(np.float32), k)
                      for k, v in zip(["scale", "B", "mean", "var"], bn)]
            nodes = [
                helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
                helper.make_node("BatchNormalization", ["c", "scale", "B", "mean", "var"],
                                 ["n"], name="bn", epsilon=EPS),
                helper.make_node("Flatten", ["n"], ["f"], name="flat"),
                helper.make_node("Gemm", ["f", n1, "c1"], ["h"], name="gemm1"),
                helper.make_node("MatMul", ["h", n2], ["y"], name="mm2"),
            ]
            g = helper.make_graph(
                nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 8, 8, 8])],
                [helper.make_tensor_value_info("y", TP.FLOAT, [1, 40])], inits)
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
            data = m.SerializeToString()
            o1, o2 = raw_offset(data, inits[1]), raw_offset(data, inits[3])
            if o1 % 4 == 0 and (o2 % 4 != 0) == bool(misalign):
                return data, m
    raise AssertionError("no padding gives the offsets asked for")


def expected_conv(m):
    """The folded Conv's weight and bias in float64, from the input."""
    t = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    s = t["scale"] / np.sqrt(t["var"] + np.float64(np.float32(EPS)))
    return t["W"] * s.reshape(-1, 1, 1, 1), t["B"] - t["mean"] * s


def check_written(out, m):
    """out is the input with the BN folded: the weights no fold touches are
    the input's bytes, the folded ones numpy's within one unit of rounding."""
    got = onnx.load(out)
    assert [n.op_type for n in got.graph.node] == ["Conv", "Flatten", "Gemm", "MatMul"]
    inits = {i.name: i for i in got.graph.initializer}
    for i in m.graph.initializer:
        if i.name.startswith("G") or i.name == "c1":
            assert inits[i.name].raw_data == i.raw_data, i.name
    conv = got.graph.node[0]
    w_new, b_new = expected_conv(m)
    assert_close_ulp(numpy_helper.to_array(inits[conv.input[1]]), w_new, TP.FLOAT, "W")
    assert_close_ulp(numpy_helper.to_array(inits[conv.input[2]]), b_new, TP.FLOAT, "bias")


@pytest.mark.parametrize("misalign", [0, 1], ids=["aligned", "misaligned"])
def test_shared_reference_writes_what_numpy_computes(bnfold, tmp_path, misalign):
    data, m = model_bytes(misalign)
    src = tmp_path / "in.onnx"
    src.write_bytes(data)
    out = str(tmp_path / "out.onnx")
    p = run(bnfold, [str(src), "-o", out])
    assert p.returncode == 0, describe(p)
    assert RE_VERIFIED.search(p.stderr).group("mode") == "graph", describe(p)
    check_written(out, m)
    assert src.read_bytes() == data, "the input changed"
    with open(out, "rb") as f:
        written = f.read()
    # From a pipe (the reference borrows a buffer, not a file mapping).
    p = run(bnfold, ["-", "-o", "-"], stdin=data)
    assert p.returncode == 0, describe(p)
    assert RE_VERIFIED.search(p.stderr).group("mode") == "graph", describe(p)
    assert p.stdout == written
    # Onto another file system (tmpfs): the temporary file is made there.
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        shm = "/dev/shm/bnfold-sharing-%d-%d.onnx" % (os.getpid(), misalign)
        try:
            p = run(bnfold, [str(src), "-o", shm])
            assert p.returncode == 0, describe(p)
            with open(shm, "rb") as f:
                assert f.read() == written
        finally:
            if os.path.exists(shm):
                os.remove(shm)


@pytest.mark.parametrize("misalign", [0, 1], ids=["aligned", "misaligned"])
def test_shared_reference_still_fails_a_zero_tolerance(bnfold, tmp_path, misalign):
    """The reference keeps the original weights while the fold replaces the
    tree's: with no tolerance the folded model's rounding fails the check,
    from a file and from a pipe, and nothing is written."""
    data, _ = model_bytes(misalign)
    src = tmp_path / "in.onnx"
    src.write_bytes(data)
    out = tmp_path / "out" / "out.onnx"
    out.parent.mkdir()
    p = run(bnfold, ["--atol", "0", "--rtol", "0", str(src), "-o", str(out)])
    assert p.returncode == 1, describe(p)
    assert "nothing written" in p.stderr, describe(p)
    assert os.listdir(out.parent) == [], "a failed check left files"
    p = run(bnfold, ["--atol", "0", "--rtol", "0", "-", "-o", "-"], stdin=data)
    assert p.returncode == 1 and p.stdout == b"", describe(p)
    assert src.read_bytes() == data


# ---------------------------------------------------------------------------
# Unchanged bytes are copied from the input file by the kernel
# (copy_file_range) when input and output are files of one file system; a
# pipe on either side, or another file system, writes them through memory.
# Every way gives the same bytes.

def shm_path(name):
    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        pytest.skip("no writable /dev/shm")
    return "/dev/shm/bnfold-%d-%s" % (os.getpid(), name)


def written_every_way(bnfold, tmp_path, data, args):
    """The output of bnfold ARGS on data: input from a file and from a
    pipe, output to a file beside it, on /dev/shm and to a pipe. All must
    agree; returns the bytes."""
    src = tmp_path / "in.onnx"
    src.write_bytes(data)
    out = tmp_path / "out.onnx"
    p = run(bnfold, args + [str(src), "-o", str(out)])
    assert p.returncode == 0, describe(p)
    want = out.read_bytes()
    shm = shm_path("copy.onnx")
    try:
        p = run(bnfold, args + [str(src), "-o", shm])
        assert p.returncode == 0, describe(p)
        with open(shm, "rb") as f:
            assert f.read() == want, "written across file systems"
    finally:
        if os.path.exists(shm):
            os.remove(shm)
    p = run(bnfold, args + [str(src), "-o", "-"])
    assert p.returncode == 0 and p.stdout == want, describe(p)
    out.unlink()
    p = run(bnfold, args + ["-", "-o", str(out)], stdin=data)
    assert p.returncode == 0, describe(p)
    assert out.read_bytes() == want, "read from a pipe"
    assert src.read_bytes() == data, "the input changed"
    return want


@pytest.mark.parametrize("misalign", [0, 1], ids=["aligned", "misaligned"])
def test_kernel_copy_of_unchanged_tensors(bnfold, tmp_path, misalign):
    data, m = model_bytes(misalign)
    assert len(m.graph.initializer[1].raw_data) >= 64 << 10  # large enough to be copied
    for args in (["--no-verify"], []):
        written = written_every_way(bnfold, tmp_path, data, args)
        (tmp_path / "check.onnx").write_bytes(written)
        check_written(str(tmp_path / "check.onnx"), m)


def test_kernel_copy_of_an_unchanged_model(bnfold, tmp_path):
    """Nothing folds (the BN follows a Relu): the model is written back byte
    for byte, whichever way it is read and written."""
    data, m = model_bytes(0)
    relu = helper.make_node("Relu", ["c"], ["r"], name="relu")
    nodes = list(m.graph.node)
    nodes[1].input[0] = "r"
    del m.graph.node[:]
    m.graph.node.extend([nodes[0], relu] + nodes[1:])
    data = m.SerializeToString()
    assert len(data) > 64 << 10
    for args in (["--no-verify"], []):
        assert written_every_way(bnfold, tmp_path, data, args) == data


def test_kernel_copy_failure_writes_nothing(bnfold, tmp_path):
    """A write that fails part way (RLIMIT_FSIZE below the model's size)
    is an error whether the bytes went by the kernel or through memory,
    and leaves no file."""
    import resource
    import subprocess
    data, _ = model_bytes(0)
    src = tmp_path / "in.onnx"
    src.write_bytes(data)
    out = tmp_path / "out" / "out.onnx"
    out.parent.mkdir()

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(data) // 2, len(data) // 2))
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    for args in (["--no-verify"], []):
        p = subprocess.run([bnfold] + args + [str(src), "-o", str(out)], preexec_fn=limit,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 2, p.stderr
        assert os.listdir(out.parent) == [], "a failed write left files"
    assert src.read_bytes() == data
