"""Models written the way real exporters write them (tests/fixtures/real/,
made by gen_real_exports.py): the plain command folds them, the output
passes the ONNX checker and computes in onnxruntime what the original
computes there (atol 1e-4, rtol 1e-3 on seeded inputs), and every
BatchNormalization that stays names its real obstacle.
"""

import json
import os
import re

import numpy as np
import onnx
from onnx import numpy_helper
import pytest

import conftest as C
import ortutil

REAL = os.path.join(C.FIXTURES, "real")
ATOL, RTOL = 1e-4, 1e-3

# file -> what the plain command (plus args) must do: BatchNormalization
# nodes left, kept ones with their reason code and a fragment of the
# reason, and a fragment of stderr under -v.
# A case may name its fixture with "file" (default: the case's own name).
FREEZE_HINT = r"initializer also listed as a graph input.*--freeze-initializer-inputs"
CASES = {
    "dim_minus1": dict(bn_after=0, verbose_note="3 declared dimensions of 3 values are "
                       "negative (first: 'x' dim 0 is -1): read as unknown"),
    "ir3_init_inputs": dict(bn_after=0),
    "ir7_init_inputs": dict(bn_after=2, kept={"bn1": ("non-constant", FREEZE_HINT),
                                              "bn2": ("non-constant", FREEZE_HINT)}),
    "ir7_init_inputs+freeze": dict(file="ir7_init_inputs", bn_after=0,
                                   args=["--freeze-initializer-inputs"]),
    "reshaped_bias": dict(bn_after=0, folded={"bn1": "Conv", "bn2": "ConvTranspose",
                                              "bn3": "Conv"}),
    "reshaped_bias_kept": dict(bn_after=2, kept={
        "bn1": ("not-per-channel", r"Add 'convt.add'.*ConvTranspose 'convt'.*axis 3"),
        "bn2": ("unsupported-producer", r"Add 'residual'.*two computed values")}),
    "reshape_2d_matmul": dict(bn_after=1, folded={"bn1": "Gemm", "bn2": "Gemm", "bn3": "Gemm"},
                              kept={"bn4": ("shape-mismatch", r"'x4' of MatMul 'fc4' has rank 3")}),
    "unsqueeze_bn_squeeze": dict(bn_after=1, folded={"bn1": "Gemm", "bn2": "Gemm"}, kept={
        "bn3": ("shape-mismatch", r"through Unsqueeze 'unsqueeze3' the BatchNormalization "
                r"channel is axis 0 of the output of MatMul 'fc3'")}),
    "matmul_transpose_bn": dict(bn_after=1, folded={"fc1.bn": "MatMul", "fc2.bn": "MatMul"},
                                kept={"fc3.bn": ("shape-mismatch", r"through Transpose 'fc3.t' "
                                                 r"the BatchNormalization channel is axis 1")}),
    "matmul_reshape_bn": dict(bn_after=1, folded={"fc1.bn": "MatMul", "fc2.bn": "MatMul"},
                              kept={"fc3.bn": ("shape-mismatch", r"Reshape 'fc3.r' has 2 \(not 1\) "
                                               r"on axis 2 after the BatchNormalization channel")}),
}


def ort_module():
    if os.environ.get("BNFOLD_SKIP_ORT") == "1":
        pytest.skip("BNFOLD_SKIP_ORT=1: onnxruntime comparisons switched off by the user")
    import ortutil
    if not ortutil.ensure_ort():
        pytest.fail("onnxruntime-node is not available (node + tests/ort)", pytrace=False)
    return ortutil


def path_of(name):
    return os.path.join(REAL, name + ".onnx")


def case_path(name):
    return path_of(CASES[name].get("file", name))


def seeded_feeds(model, seed, unknown=2):
    """Random inputs for the graph inputs that are not initializers; an
    unknown dim (dim_param, absent, or negative as paddle2onnx writes it)
    is `unknown`."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else unknown
                for d in tt.shape.dim]
        np_type = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[tt.elem_type]
        feeds[vi.name] = rng.normal(0, 1, dims).astype(np_type)
    return feeds


def bn_count(m):
    return sum(1 for _, n in C.all_nodes(m) if n.op_type == "BatchNormalization")


def assert_same_in_ort(src, out, seeds=(1, 2)):
    ort = ort_module()
    original = C.load_model(src)
    for seed in seeds:
        feeds = seeded_feeds(original, seed)
        want = ort.run_ort(src, feeds)
        got = ort.run_ort(out, feeds)
        assert list(got) == list(want)
        for name in want:
            assert np.all(np.isfinite(got[name])), name
            np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=RTOL,
                                       err_msg="output %r, seed %d" % (name, seed))


@pytest.fixture(scope="module")
def folded(bnfold, tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            case = CASES[name]
            out = str(tmp_path_factory.mktemp("real") / (name + ".onnx"))
            proc = C.run(bnfold, case.get("args", []) + ["-v", case_path(name), "-o", out])
            cache[name] = (proc, out)
        return cache[name]
    return get


def test_generator_reproduces_fixtures(tmp_path):
    """The committed fixtures are what gen_real_exports.py writes."""
    import gen_real_exports
    gen_real_exports.main(str(tmp_path))
    made = sorted(os.listdir(tmp_path))
    assert made == sorted(f for f in os.listdir(REAL) if f.endswith(".onnx"))
    for f in made:
        assert (tmp_path / f).read_bytes() == open(os.path.join(REAL, f), "rb").read(), f
    assert {CASES[c].get("file", c) + ".onnx" for c in CASES} == set(made)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_is_what_it_claims(name):
    """The fixture itself is valid ONNX and has BatchNormalization to fold."""
    m = C.load_model(case_path(name))
    onnx.checker.check_model(m, full_check=True)
    assert bn_count(m) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_plain_command_folds(folded, name):
    proc, out = folded(name)
    case = CASES[name]
    assert proc.returncode == 0, C.describe(proc)
    m = C.load_model(out)
    onnx.checker.check_model(m, full_check=True)
    assert bn_count(m) == case["bn_after"], C.describe(proc)
    if "verbose_note" in case:
        assert case["verbose_note"] in proc.stderr, C.describe(proc)
    kept = C.parse_verbose(proc.stderr)
    for bn, op in case.get("folded", {}).items():
        got = kept.get(bn)
        assert got and got[0][:2] == ("folded", op), (bn, got, C.describe(proc))
    for bn, (reason, fragment) in case.get("kept", {}).items():
        got = kept.get(bn)
        assert got and got[0][0] == "kept", (bn, C.describe(proc))
        assert got[0][1] == reason, (bn, got, C.describe(proc))
        assert re.search(fragment, got[0][2]), (bn, got[0][2], fragment)


@pytest.mark.parametrize("name", sorted(CASES))
def test_folded_matches_original_in_ort(folded, name):
    proc, out = folded(name)
    assert proc.returncode == 0, C.describe(proc)
    assert_same_in_ort(case_path(name), out)


# ---------------------------------------------------------------------------
# declared dims of -1 (FOLDING.md trap 12)

def test_minus1_kept_as_written(folded):
    proc, out = folded("dim_minus1")
    m = C.load_model(out)
    dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(m.graph.input[0]) == [-1, 3, 8, 8]
    assert dims(m.graph.output[0]) == [-1, 4, 8, 8]
    assert [dims(v) for v in m.graph.value_info if v.name == "r1"] == [[-1, 6, 8, 8]]


def test_minus1_said_once_under_v_only(bnfold, tmp_path):
    src = path_of("dim_minus1")
    quiet = C.run(bnfold, [src, "-o", str(tmp_path / "a.onnx")])
    assert quiet.returncode == 0 and "declared dimension" not in quiet.stderr, \
        C.describe(quiet)
    loud = C.run(bnfold, ["-v", src, "-o", str(tmp_path / "b.onnx")])
    assert loud.stderr.count("declared dimension") == 1, C.describe(loud)


@pytest.mark.parametrize("args", [["--no-verify", "-o", "OUT"], ["--check"],
                                  ["--check", "-o", "OUT"], ["--run", "--output-dir", "DIR"],
                                  ["--shape", "x=3x3x8x8", "-o", "OUT"],
                                  ["-n", "--samples", "3"]])
def test_minus1_every_mode(bnfold, tmp_path, args):
    args = [str(tmp_path / "o.onnx") if a == "OUT" else str(tmp_path) if a == "DIR" else a
            for a in args]
    proc = C.run(bnfold, args + [path_of("dim_minus1")])
    # --check exits 1 on its findings (the BatchNormalization nodes could
    # fold), never 2: the model is accepted.
    want = 1 if args == ["--check"] else 0
    assert proc.returncode == want, C.describe(proc)
    assert "negative" not in proc.stderr, C.describe(proc)


def test_minus1_in_tensor_data_still_malformed(bnfold, tmp_path):
    """A negative dim of a tensor's data is no declaration: exit 2."""
    m = C.load_model(path_of("dim_minus1"))
    t = next(t for t in m.graph.initializer if t.name == "conv2.b")
    t.dims[0] = -1
    src = tmp_path / "bad.onnx"
    src.write_bytes(m.SerializeToString())
    proc = C.run(bnfold, [str(src), "-o", str(tmp_path / "o.onnx")])
    assert proc.returncode == 2, C.describe(proc)
    assert "conv2.b" in proc.stderr and "negative" in proc.stderr, C.describe(proc)


# ---------------------------------------------------------------------------
# initializers listed as graph inputs (FOLDING.md section 4, trap 13)

def names(vis):
    return [v.name for v in vis]


def test_ir3_output_lists_every_initializer(folded):
    """Below IR version 4 every initializer is a graph input: the new ones
    are listed, the replaced ones are gone from both lists."""
    proc, out = folded("ir3_init_inputs")
    m = C.load_model(out)
    assert m.ir_version == 3
    inits = names(m.graph.initializer)
    assert sorted(names(m.graph.input)) == sorted(["x"] + inits)
    original = C.load_model(path_of("ir3_init_inputs"))
    gone = set(names(original.graph.initializer)) - set(inits)
    assert {"bn1.scale", "bn2.var", "conv1.weight"} <= gone, sorted(gone)
    assert not gone & set(names(m.graph.input))


def test_ir7_unchanged_without_option(folded):
    proc, out = folded("ir7_init_inputs")
    with open(out, "rb") as a, open(path_of("ir7_init_inputs"), "rb") as b:
        assert a.read() == b.read(), "nothing folds: the input is written back as it was"


def test_ir7_freeze_drops_consumed_inputs(folded):
    proc, out = folded("ir7_init_inputs+freeze")
    m = C.load_model(out)
    assert m.ir_version == 7
    # The Gemm's weight was not consumed by a fold: it stays an input.
    assert names(m.graph.input) == ["x", "fc.weight", "fc.bias"]
    assert set(names(m.graph.initializer)) >= {"fc.weight", "fc.bias"}


# ---------------------------------------------------------------------------
# parameters computed from constants (FOLDING.md section 4)

def test_constant_subgraphs_dropped(folded):
    """Conv -> Add(reshaped bias) -> BN ends as one Conv; the Reshape,
    Squeeze, Cast, Concat, Unsqueeze and Identity chains over Constant
    nodes that only fed the folds are gone."""
    proc, out = folded("reshaped_bias")
    m = C.load_model(out)
    assert [n.op_type for n in m.graph.node] == ["Conv", "Relu", "ConvTranspose", "Conv"]
    assert C.dead_constants(m) == []


def test_constant_subgraph_kept_when_not_folded(folded):
    proc, out = folded("reshaped_bias_kept")
    with open(out, "rb") as a, open(path_of("reshaped_bias_kept"), "rb") as b:
        assert a.read() == b.read()


# ---------------------------------------------------------------------------
# BatchNormalization whose channel is not right after the layer (trap 12)

def ops(m):
    return [n.op_type for n in m.graph.node]


def test_unsqueeze_bn_squeeze_shape(folded):
    proc, out = folded("unsqueeze_bn_squeeze")
    assert ops(C.load_model(out)) == [
        "Gemm", "Unsqueeze", "Squeeze", "Relu", "Gemm", "Unsqueeze", "Squeeze", "MatMul",
        "Unsqueeze", "BatchNormalization", "Squeeze"]


def test_channels_last_transpose_shape(folded):
    """With a bias Add the fold ends in it; without, the BN node becomes the
    bias Add, of shape [C, 1] for its [N, C, L] input."""
    proc, out = folded("matmul_transpose_bn")
    m = C.load_model(out)
    assert ops(m)[:7] == ["MatMul", "Add", "Transpose", "Transpose", "MatMul", "Transpose",
                          "Add"]
    add = m.graph.node[6]
    assert add.name == "fc2.bn" and list(add.output) == ["fc2.y"]
    bias = next(t for t in m.graph.initializer if t.name == add.input[1])
    assert list(bias.dims) == [6, 1]


def test_channels_last_reshape_shape(folded):
    proc, out = folded("matmul_reshape_bn")
    m = C.load_model(out)
    assert ops(m).count("BatchNormalization") == 1
    assert ops(m)[:4] == ["MatMul", "Add", "Reshape", "Reshape"]


# ---------------------------------------------------------------------------
# -v lists what one can act on, -vv the rest (issue 12, point 6)

def test_v_leaves_non_news_to_vv(bnfold, tmp_path):
    """The Add after a 3-D MatMul is its bias, not a fold candidate one can
    do anything about: -vv lists it, -v does not."""
    src = path_of("matmul_reshape_bn")
    lines = {}
    for flags in (["-v"], ["-vv"], ["-v", "--verbose"]):
        proc = C.run(bnfold, flags + [src, "-o", str(tmp_path / "o.onnx")])
        assert proc.returncode == 0, C.describe(proc)
        lines[" ".join(flags)] = [l for l in proc.stderr.splitlines()
                                  if l.startswith("bnfold: Add 'fc1.add'")]
    assert lines["-v"] == []
    assert len(lines["-vv"]) == 1 and "kept (shape-mismatch)" in lines["-vv"][0]
    assert lines["-v --verbose"] == lines["-vv"]


def test_check_gate_honours_freeze(bnfold):
    """--check's fold probe reads initializers listed as inputs as the fold
    would: with the option the BNs are foldable (bn-unfolded), without it
    they are not."""
    src = path_of("ir7_init_inputs")
    plain = C.run(bnfold, ["--check", src])
    frozen = C.run(bnfold, ["--check", "--freeze-initializer-inputs", src])
    assert plain.returncode == 0 and "bn-unfolded" not in plain.stderr, C.describe(plain)
    assert frozen.returncode == 1, C.describe(frozen)
    assert frozen.stderr.count("bn-unfolded") == 2, C.describe(frozen)


LAYOUT = ["matmul_transpose_bn", "matmul_reshape_bn", "unsqueeze_bn_squeeze"]


@pytest.mark.parametrize("name", LAYOUT)
def test_layout_folds_are_checked_one_by_one(bnfold, name):
    """A fold through layout nodes (MatMul -> Transpose/Reshape -> BN,
    Gemm -> Unsqueeze -> BN -> Squeeze) is cut out and checked on its own
    like any other, at the rank the graph proves for the layer's input."""
    p = C.run(bnfold, ["-n", os.path.join(REAL, name + ".onnx"), "--json", "-"])
    assert p.returncode == 0, C.describe(p)
    folds = json.loads(p.stdout)["check"]["folds"]
    assert len(folds) == 2
    for f in folds:
        assert f["checked"] and f["note"] is None and f["pass"], f
    if name.startswith("matmul"):  # x is [N, 5, 12]: rank 3, its 5 kept
        assert [len(f["input_shape"]) for f in folds] == [3, 3], folds
        assert [f["input_shape"][-1] for f in folds] == [12, 8], folds
        assert folds[0]["input_shape"][1] == 5, folds


def test_compare_with_layout_folds(bnfold, tmp_path):
    """--compare of a model with its own layout folds is "equal": the values
    between the layer and the BN keep their names in both models and mean
    other things (before and after the BN's scale), so they are not fold
    pairs. One weight of the folded MatMul moved by 2% (onnxruntime sees the
    output change) is "different"."""
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available: onnxruntime cannot run")
    src = os.path.join(REAL, "matmul_transpose_bn.onnx")
    folded = str(tmp_path / "folded.onnx")
    assert C.run(bnfold, ["-q", src, "-o", folded]).returncode == 0
    p = C.run(bnfold, ["--compare", src, folded, "--json", "-"])
    r = json.loads(p.stdout)
    assert p.returncode == 0 and r["verdict"] == "equal", C.describe(p)
    assert all(f["pass"] for f in r["check"]["folds"]), r["check"]["folds"]
    model = onnx.load(folded)
    fc1 = next(n for n in model.graph.node if n.name == "fc1")
    init = next(t for t in model.graph.initializer if t.name == fc1.input[1])
    w = numpy_helper.to_array(init).copy()
    w[0, 0] *= 1.02
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    wrong = str(tmp_path / "wrong.onnx")
    onnx.save(model, wrong)
    x = np.random.default_rng(5).standard_normal((2, 5, 12)).astype(np.float32)
    ref = ortutil.run_ort(folded, {"x": x})
    bad = ortutil.run_ort(wrong, {"x": x})
    assert any(not np.allclose(ref[k], bad[k], rtol=1e-4, atol=1e-6) for k in ref)
    p = C.run(bnfold, ["--compare", src, wrong, "--json", "-"])
    r = json.loads(p.stdout)
    assert p.returncode == 1 and r["verdict"] == "different", C.describe(p)
    assert [o["name"] for o in r["check"]["outputs"] if not o["pass"]] == ["y"]
