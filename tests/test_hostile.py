"""The hostile corpus (tests/hostile/, written by gen_hostile.py): every
malformed or hostile model gives its expected exit code and message, a
refused one leaves no output and no temporary file behind, and the input
file is never modified."""

import json
import os

import pytest

from conftest import TESTS_DIR, describe, run, sha256

HOSTILE = os.path.join(TESTS_DIR, "hostile")

with open(os.path.join(HOSTILE, "manifest.json")) as f:
    ENTRIES = json.load(f)["models"]


def test_corpus_is_complete():
    names = [e["file"] for e in ENTRIES]
    assert len(names) >= 50
    assert len(set(names)) == len(names), "a file is listed twice"
    on_disk = sorted(n for n in os.listdir(HOSTILE) if n.endswith(".onnx"))
    assert on_disk == sorted(names), "tests/hostile/ and manifest.json disagree"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_hostile_model(bnfold, tmp_path, entry):
    src = os.path.join(HOSTILE, entry["file"])
    before = sha256(src)
    listing = sorted(os.listdir(HOSTILE))
    out = tmp_path / "out.onnx"
    p = run(bnfold, [src, "-o", str(out)] + entry.get("args", []))
    assert p.returncode == entry["exit"], describe(p)
    assert entry["message"] in p.stderr, describe(p)
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, describe(p)
    if entry["exit"] == 2:
        lines = p.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("bnfold: "), \
            "a refusal must be one line:\n" + p.stderr
        assert os.listdir(tmp_path) == [], "output or temporary file left behind"
    elif entry["exit"] == 0:
        assert os.listdir(tmp_path) == ["out.onnx"], "exactly the output must appear"
    assert sha256(src) == before, "the input was modified"
    assert sorted(os.listdir(HOSTILE)) == listing, "a file appeared next to the input"


def test_hostile_model_on_stdin(bnfold):
    """The same refusal when the model comes through a pipe."""
    entry = next(e for e in ENTRIES if e["file"] == "input_huge.onnx")
    with open(os.path.join(HOSTILE, entry["file"]), "rb") as f:
        p = run(bnfold, ["-", "-o", "-"], stdin=f.read())
    assert p.returncode == 2, describe(p)
    assert entry["message"] in p.stderr and p.stdout == b""
