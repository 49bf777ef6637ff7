"""Determinism: the same input and options give byte-identical models
across runs and thread counts, and the check prints the same numbers
whatever the number of evaluator threads."""

import os

from conftest import FIXTURES, describe, run

MODELS = [os.path.join(FIXTURES, "torch", "resnet_tiny.onnx"),
          os.path.join(FIXTURES, "example.onnx")]


def fold(bnfold, src, out, threads):
    p = run(bnfold, ["-v", "-j", str(threads), src, "-o", str(out)])
    assert p.returncode == 0, describe(p)
    numbers = [line for line in p.stderr.splitlines() if " err " in line]
    assert numbers, "the check printed no numbers:\n" + p.stderr
    return out.read_bytes(), numbers


def test_same_bytes_and_numbers_across_runs_and_threads(bnfold, tmp_path):
    for src in MODELS:
        results = [fold(bnfold, src, tmp_path / ("out%d.onnx" % i), j)
                   for i, j in enumerate((1, 1, 2, 2, 4))]
        first_bytes, first_numbers = results[0]
        for model_bytes, numbers in results[1:]:
            assert model_bytes == first_bytes, "%s: output bytes differ" % src
            assert numbers == first_numbers, "%s: check numbers differ:\n%s\n%s" % (
                src, "\n".join(first_numbers), "\n".join(numbers))


def test_compare_numbers_across_threads(bnfold):
    src = MODELS[0]
    outs = []
    for j in (1, 2, 3):
        p = run(bnfold, ["--compare", "-j", str(j), "-v", "--samples", "3", src, src])
        assert p.returncode == 0, describe(p)
        outs.append(p.stderr)
    assert outs[0] == outs[1] == outs[2]
