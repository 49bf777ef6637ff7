"""Writes appear whole or not at all: a full device, a file size limit hit
in the middle of the write and a closed pipe each give exit 2 with the
reason, leave no output or temporary file, and never touch the input."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import FIXTURES, RUN_TIMEOUT, sha256

FOLDS = os.path.join(FIXTURES, "torch", "resnet_tiny.onnx")     # 26 kB, folds
NO_BN = "no_bn"                                                 # made below, written back as is


def make_no_bn(path):
    """A 16 kB model with nothing to fold (Add of a constant)."""
    c = numpy_helper.from_array(np.arange(4000, dtype=np.float32), "c")
    g = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4000])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4000])],
                          initializer=[c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def run_to(bnfold, args, stdout, pre=None):
    cmd = [bnfold] + args
    if pre:
        cmd = ["sh", "-c", pre + '; exec "$0" "$@"'] + cmd
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def copy_input(tmp_path, src):
    dst = tmp_path / (os.path.basename(src) + ".onnx")
    if src == NO_BN:
        make_no_bn(dst)
    else:
        shutil.copyfile(src, dst)
    assert os.path.getsize(dst) > 8 * 512
    return str(dst), sha256(dst)


@pytest.mark.parametrize("src", [FOLDS, NO_BN], ids=["folded", "unchanged"])
def test_stdout_to_dev_full(bnfold, tmp_path, src):
    path, digest = copy_input(tmp_path, src)
    with open("/dev/full", "wb") as full:
        code, err = run_to(bnfold, [path, "-o", "-", "--no-verify"], full)
    assert code == 2, err
    assert "cannot write to <stdout>" in err and "No space left on device" in err, err
    assert sha256(path) == digest


@pytest.mark.parametrize("src", [FOLDS, NO_BN], ids=["folded", "unchanged"])
def test_file_size_limit_mid_write(bnfold, tmp_path, src):
    """ulimit -f 8 (4 kB in sh's 512-byte blocks), SIGXFSZ ignored: the write
    fails with EFBIG part way through the model."""
    path, digest = copy_input(tmp_path, src)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    code, err = run_to(bnfold, [path, "-o", str(out), "--no-verify"], subprocess.DEVNULL,
                       pre="trap '' XFSZ; ulimit -f 8")
    assert code == 2, err
    assert "File too large" in err and str(out) in err, err
    assert os.listdir(out.parent) == [], "output or temporary file left behind"
    assert sha256(path) == digest


def test_file_size_limit_keeps_old_output(bnfold, tmp_path):
    path, digest = copy_input(tmp_path, FOLDS)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    out.write_bytes(b"the previous output")
    code, err = run_to(bnfold, [path, "-o", str(out), "--no-verify"], subprocess.DEVNULL,
                       pre="trap '' XFSZ; ulimit -f 8")
    assert code == 2, err
    assert out.read_bytes() == b"the previous output"
    assert os.listdir(out.parent) == ["model.onnx"]
    assert sha256(path) == digest


@pytest.mark.parametrize("src", [FOLDS, NO_BN], ids=["folded", "unchanged"])
def test_closed_pipe_is_an_error(bnfold, tmp_path, src):
    """A reader that went away: exit 2 with a message, not death by SIGPIPE."""
    path, digest = copy_input(tmp_path, src)
    r, w = os.pipe()
    os.close(r)
    try:
        code, err = run_to(bnfold, [path, "-o", "-", "--no-verify"], w)
    finally:
        os.close(w)
    assert code == 2, "exit %d: %s" % (code, err)
    assert "cannot write to <stdout>" in err and "Broken pipe" in err, err
    assert sha256(path) == digest
