"""valgrind finds no invalid access and no definite or indirect leak when
bnfold folds a real model, with and without the check."""

import os
import shutil
import subprocess

import pytest

from conftest import FIXTURES

MODEL = os.path.join(FIXTURES, "torch", "resnet_tiny.onnx")
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "-q"]


def sanitized(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize("args", [["--no-verify"], ["-j", "1", "--samples", "1"]],
                         ids=["no-verify", "check"])
def test_valgrind_clean(bnfold, tmp_path, args):
    if sanitized(bnfold):
        pytest.skip("%s is built with AddressSanitizer, which valgrind cannot run" % bnfold)
    out = tmp_path / "out.onnx"
    p = subprocess.run(VALGRIND + [bnfold, MODEL, "-o", str(out)] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, "valgrind: exit %d\n%s" % (p.returncode, err)
    assert out.stat().st_size > 0
