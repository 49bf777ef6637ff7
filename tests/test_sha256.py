"""The SHA-256 of the --json report against hashlib, on both block functions
of src/sha256.c: the default choice (the SHA extensions where the processor
has them) and the plain C one that BNF_SHA256_PORTABLE=1 forces.

Each model is a Conv -> BatchNormalization pair, so the output differs from
the input. Three hashing routes are covered: the input read into memory
(one call over the whole file), the output read back from its file (64 KiB
chunks), and an output on stdout (hashed while protobuf-c packs it, in many
small pieces). A doc_string grown one byte at a time walks the file sizes
through every residue mod 64; wide convolutions give multi-megabyte files.
"""

import hashlib
import json

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import conftest as C

PATHS = ["default", "portable"]


@pytest.fixture(params=PATHS)
def sha_path(request, monkeypatch):
    """Sets or clears the knob for the bnfold processes the test starts."""
    if request.param == "portable":
        monkeypatch.setenv("BNF_SHA256_PORTABLE", "1")
    else:
        monkeypatch.delenv("BNF_SHA256_PORTABLE", raising=False)
    return request.param


def conv_bn_bytes(cin, cout, doc):
    rng = np.random.default_rng(cin * 7919 + cout)
    w = numpy_helper.from_array(rng.standard_normal((cout, cin, 1, 1)).astype(np.float32), "w")
    bn = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in
          (("scale", rng.uniform(0.5, 1.5, cout)), ("bias", rng.uniform(-1, 1, cout)),
           ("mean", rng.uniform(-1, 1, cout)), ("var", rng.uniform(0.5, 2, cout)))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"],
                              name="bn")]
    g = helper.make_graph(nodes, "sha", [helper.make_tensor_value_info("x", TP.FLOAT, [1, cin, 1, 1])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [1, cout, 1, 1])], [w] + bn)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    m.doc_string = doc
    return m.SerializeToString()


def hex_of(data):
    return hashlib.sha256(data).hexdigest()


def check_to_file(bnfold, tmp_path, data):
    """Input and output file hashes; returns the output's size."""
    src, out, rep = tmp_path / "in.onnx", tmp_path / "out.onnx", tmp_path / "r.json"
    src.write_bytes(data)
    p = C.run(bnfold, ["-q", "--json", str(rep), str(src), "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    r = json.loads(rep.read_text())
    written = out.read_bytes()
    assert written != data, "the fold should change the model"
    assert (r["input"]["size"], r["input"]["sha256"]) == (len(data), hex_of(data)), \
        "input of %d bytes" % len(data)
    assert (r["output"]["size"], r["output"]["sha256"]) == (len(written), hex_of(written)), \
        "output file of %d bytes (input %d)" % (len(written), len(data))
    return len(written)


def check_to_stdout(bnfold, tmp_path, data):
    """Input on stdin, output on stdout: the output is hashed as it is packed."""
    rep = tmp_path / "r.json"
    p = C.run(bnfold, ["-q", "--json", str(rep), "-", "-o", "-"], stdin=data)
    assert p.returncode == 0, C.describe(p)
    r = json.loads(rep.read_text())
    assert r["input"]["sha256"] == hex_of(data), "input of %d bytes" % len(data)
    assert (r["output"]["size"], r["output"]["sha256"]) == (len(p.stdout), hex_of(p.stdout)), \
        "stdout output of %d bytes (input %d)" % (len(p.stdout), len(data))
    return len(p.stdout)


def test_every_size_mod_64(bnfold, sha_path, tmp_path):
    in_sizes, out_sizes, pipe_sizes = set(), set(), set()
    for extra in range(140):
        data = conv_bn_bytes(2, 3, "d" * extra)
        if len(data) in in_sizes:
            continue
        in_sizes.add(len(data))
        out_sizes.add(check_to_file(bnfold, tmp_path, data))
        pipe_sizes.add(check_to_stdout(bnfold, tmp_path, data))
    for what, sizes in (("input", in_sizes), ("output", out_sizes), ("stdout", pipe_sizes)):
        assert len({s % 64 for s in sizes}) == 64, "%s sizes miss residues mod 64" % what


@pytest.mark.parametrize("cin,cout,extra", [(1024, 1024, 0), (1024, 1024, 37), (700, 1500, 5),
                                            (1500, 700, 63)])
def test_multi_megabyte(bnfold, sha_path, tmp_path, cin, cout, extra):
    data = conv_bn_bytes(cin, cout, "m" * extra)
    assert len(data) > 2 << 20
    check_to_file(bnfold, tmp_path, data)
    check_to_stdout(bnfold, tmp_path, data)

