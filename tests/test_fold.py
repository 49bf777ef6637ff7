"""Folding tests over every good fixture of tests/fixtures/manifest.json.

Each fixture is folded once per session with -v; the tests then check the exit
status, the -v and summary lines, the output model (checker, node count, no
dead constants, folded weights within 1 ulp of gen_fixtures.py's float64
numbers), that the input was not touched, and the numbers onnxruntime gets
from the original and the folded model.
"""

import os

import numpy as np
import pytest

import conftest as C
from conftest import gen

ENTRIES = {e["file"]: e for e in C.GOOD}


class FoldRun:
    def __init__(self, entry, proc, src, out, sha_before):
        self.entry, self.proc, self.src, self.out = entry, proc, src, out
        self.sha_before, self.sha_after = sha_before, C.sha256(src)

    @property
    def expect(self):
        return self.entry["expect"]

    def original(self):
        return C.load_model(self.src)

    def folded(self):
        assert self.proc.returncode == 0, C.describe(self.proc)
        assert os.path.isfile(self.out), "no output written\n" + C.describe(self.proc)
        return C.load_model(self.out)


@pytest.fixture(scope="session")
def fold_cache():
    return {}


@pytest.fixture
def run_fold(bnfold, fold_cache, tmp_path_factory):
    def get(file):
        if file not in fold_cache:
            entry = ENTRIES[file]
            src = os.path.join(C.FIXTURES, file)
            out = os.path.join(str(tmp_path_factory.mktemp("fold")), file)
            before = C.sha256(src)
            proc = C.run(bnfold, ["-v", src, "-o", out])
            fold_cache[file] = FoldRun(entry, proc, src, out, before)
        return fold_cache[file]
    return get


FILES = C.good_ids()


@pytest.mark.parametrize("file", FILES)
def test_exit_status_and_messages(run_fold, file):
    r = run_fold(file)
    exp = r.expect
    assert r.proc.returncode == 0, C.describe(r.proc)
    for line in r.proc.stderr.splitlines():
        assert line.startswith("bnfold: "), "stray stderr line %r" % line
    s = C.parse_summary(r.proc.stderr)
    assert s["folded"] == exp["folded"], C.describe(r.proc)
    assert s["total"] == exp["bn_total"], C.describe(r.proc)
    for kind in C.KINDS:
        assert s[kind] == exp["kinds"][kind], (kind, C.describe(r.proc))
    assert s["affine"] == exp.get("affine_folded", 0), C.describe(r.proc)
    if exp["unchanged"]:
        assert (s["nodes"], s["inits"]) == (0, 0), C.describe(r.proc)

    # FOLDING trap 9: every BN gets exactly one -v line, a kept one its reason.
    lines = C.parse_verbose(r.proc.stderr)
    bns = C.bn_names(r.original())
    assert sorted(lines) == sorted(bns), "BNs in -v lines %s, in model %s\n%s" % (
        sorted(lines), sorted(bns), r.proc.stderr)
    for bn, got in lines.items():
        assert len(got) == 1, "BN %r reported %d times" % (bn, len(got))
        got = got[0]
        if bn in exp["folded_bns"]:
            kind = exp["folded_bns"][bn]
            assert got[0] == "folded", "BN %r: expected folded (%s), got %s" % (bn, kind, got)
            assert got[3] == kind, "BN %r: kind %s, expected %s" % (bn, got[3], kind)
            allowed = {"conv": {"Conv"}, "gemm": {"Gemm"},
                       "matmul": {"MatMul", "Gemm", "Add"},
                       "convtranspose": {"ConvTranspose"}}[kind]
            assert got[1] in allowed, "BN %r folded into %s" % (bn, got[1])
        else:
            want = exp["kept"][bn]
            assert got[0] == "kept", "BN %r: expected kept (%s), got %s" % (bn, want, got)
            assert got[1] in C.REASONS, "BN %r: unknown reason code %r" % (bn, got[1])
            if want is not None:
                allowed = want if isinstance(want, list) else [want]
                assert got[1] in allowed, "BN %r: reason %s, expected %s" % (bn, got[1], want)


@pytest.mark.parametrize("file", FILES)
def test_input_not_modified(run_fold, file):
    r = run_fold(file)
    assert r.sha_before == r.sha_after, "bnfold modified its input file"


@pytest.mark.parametrize("file", FILES)
def test_output_model(run_fold, file):
    r = run_fold(file)
    exp = r.expect
    folded = r.folded()
    with open(r.src, "rb") as f:
        original_bytes = f.read()
    with open(r.out, "rb") as f:
        out_bytes = f.read()
    if exp["unchanged"]:
        assert out_bytes == original_bytes, "nothing to fold, yet the output differs"
        return
    C.onnx.checker.check_model(folded, full_check=True)
    orig = r.original()

    left = C.bn_names(folded)
    assert sorted(left) == sorted(exp["kept"]), "BNs left %s, expected kept %s" % (
        left, sorted(exp["kept"]))
    want_nodes = exp["nodes_after"]
    want_nodes = want_nodes if isinstance(want_nodes, list) else [want_nodes]
    got_nodes = C.count_nodes(folded)
    assert got_nodes in want_nodes, "%d nodes (Constant not counted), expected %s" % (
        got_nodes, want_nodes)
    assert C.dead_constants(folded) == [], "unused tensors left: %s" % C.dead_constants(folded)

    # The interface stays: same graph outputs (names, order, types) and the
    # same runtime inputs.
    def outputs(m):
        return [(o.name, o.type.tensor_type.elem_type) for o in m.graph.output]

    def runtime_inputs(m):
        inits = {t.name for t in m.graph.initializer}
        return [i.name for i in m.graph.input if i.name not in inits]

    assert outputs(folded) == outputs(orig)
    assert runtime_inputs(folded) == runtime_inputs(orig)
    assert [(o.domain, o.version) for o in folded.opset_import] == \
        [(o.domain, o.version) for o in orig.opset_import]


def folded_params(model, graph, node, kind, orig_attrs):
    """(W, B, W element type) of the node producing a folded BN's output,
    normalised to the convention of the expected arrays (see gen_fixtures)."""
    def const(name):
        return C.const_of(model, graph, name)

    attrs = gen.attr_dict(node)
    if node.op_type == "Conv":
        assert kind == "conv"
        assert len(node.input) >= 3 and node.input[2], "folded Conv has no bias"
        w, wdt = const(node.input[1])
        b, bdt = const(node.input[2])
        return w, b, wdt, bdt, 1.0, 1.0
    if node.op_type == "ConvTranspose":
        assert kind == "convtranspose"
        assert len(node.input) >= 3 and node.input[2], "folded ConvTranspose has no bias"
        w, wdt = const(node.input[1])
        b, bdt = const(node.input[2])
        return w, b, wdt, bdt, 1.0, 1.0
    if node.op_type == "Gemm":
        assert kind in ("gemm", "matmul")
        w, wdt = const(node.input[1])
        assert len(node.input) >= 3 and node.input[2], "folded Gemm has no C"
        b, bdt = const(node.input[2])
        want_tb = orig_attrs.get("transB", 0)
        if attrs.get("transB", 0) != want_tb:
            w = w.T
        alpha = np.float32(attrs.get("alpha", 1.0)) / np.float32(orig_attrs.get("alpha", 1.0))
        beta = np.float32(attrs.get("beta", 1.0))
        return w, b, wdt, bdt, float(alpha), float(beta)
    if node.op_type == "Add":
        assert kind == "matmul"
        prods = [C.find_producer(model, i)[1] for i in node.input]
        mm_side = [i for i, p in enumerate(prods) if p is not None and p.op_type == "MatMul"]
        assert len(mm_side) == 1, "folded Add is not MatMul + constant"
        b, bdt = const(node.input[1 - mm_side[0]])
        w, wdt = const(prods[mm_side[0]].input[1])
        return w, b, wdt, bdt, 1.0, 1.0
    raise AssertionError("folded BN output produced by %s" % node.op_type)


@pytest.mark.parametrize("file", [f for f in FILES if ENTRIES[f]["expect"]["folded"]])
def test_folded_weights(run_fold, file):
    r = run_fold(file)
    folded, orig = r.folded(), r.original()
    z = np.load(os.path.join(C.FIXTURES, r.entry["npz"]))
    for bn, kind in r.expect["folded_bns"].items():
        if bn in r.expect.get("weights_unchecked", {}):
            continue  # the outputs (numpy, onnxruntime) check it
        g0, bn_node = gen.find_bn(orig, bn)
        out_name = bn_node.output[0]
        p0 = gen.producer(g0, bn_node.input[0])
        while p0.op_type in ("Identity", "Dropout"):  # eval-mode identities
            p0 = gen.producer(g0, p0.input[0])
        if p0.op_type == "Add":  # MatMul -> Add -> BN
            p0 = [gen.producer(g0, i) for i in p0.input if gen.producer(g0, i) is not None][0]
        w0, w0dt = gen.resolve_const(gen.graph_chain(orig, g0), p0.input[1])
        g, node = C.find_producer(folded, out_name)
        assert node is not None, "nothing produces %r after folding" % out_name
        w, b, wdt, bdt, alpha, beta = folded_params(folded, g, node, kind, gen.attr_dict(p0))
        assert wdt == w0dt and bdt == w0dt, \
            "BN %r: folded dtypes W %d B %d, original weight %d" % (bn, wdt, bdt, w0dt)
        w_exp = z["fold/%s/W" % out_name].astype(np.float64)
        b_exp = z["fold/%s/B" % out_name].astype(np.float64)
        assert w.shape == w_exp.shape, "BN %r: W shape %s, expected %s" % (
            bn, w.shape, w_exp.shape)
        what = "%s: BN %r" % (file, bn)
        if alpha == 1.0:
            C.assert_close_ulp(w, w_exp, wdt, what + " weight")
        else:  # alpha folded into W or changed: compare alpha * W
            np.testing.assert_allclose(alpha * w, w_exp, rtol=1e-6, atol=0, err_msg=what)
        if beta == 1.0:
            C.assert_close_ulp(b, b_exp, bdt, what + " bias")
        else:
            np.testing.assert_allclose(beta * b, np.broadcast_to(b_exp, np.shape(beta * b)),
                                       rtol=1e-6, atol=1e-7, err_msg=what)


@pytest.mark.parametrize("file", [f for f in FILES if ENTRIES[f]["expect"].get("unchanged_nodes")])
def test_shared_weights_untouched(run_fold, file):
    """FOLDING trap 3: a node sharing a folded weight still sees the original values."""
    r = run_fold(file)
    folded, orig = r.folded(), r.original()
    for name in r.expect["unchanged_nodes"]:
        g0, n0 = [(g, n) for g, n in C.all_nodes(orig) if n.name == name][0]
        hits = [(g, n) for g, n in C.all_nodes(folded) if n.name == name]
        assert len(hits) == 1, "node %r missing after folding" % name
        g1, n1 = hits[0]
        assert len(n1.input) == len(n0.input)
        for i0, i1 in zip(n0.input, n1.input):
            if gen.producer(g0, i0) is None and i0 in {t.name for t in g0.initializer}:
                v0 = C.const_of(orig, g0, i0)[0]
                v1 = C.const_of(folded, g1, i1)[0]
                assert np.array_equal(v0, v1), "node %r input %r changed" % (name, i0)


@pytest.mark.parametrize("file", [f for f in FILES if ENTRIES[f]["expect"].get("shared_folds")])
def test_equal_folds_share_one_copy(run_fold, file):
    """Folds that compute the same weights (a head shared by pyramid levels)
    keep one copy: each group of folded nodes reads one weight and one bias
    initializer, other groups other ones, and the folded values are the
    numpy fold (test_folded_weights), so nothing merged that differs."""
    r = run_fold(file)
    folded = r.folded()
    g = folded.graph
    by_name = {n.name: n for n in g.node}
    seen = set()
    for group in r.expect["shared_folds"]:
        reads = {tuple(by_name[name].input[1:3]) for name in group}
        assert len(reads) == 1, "%s: %s read different copies %s" % (file, group, reads)
        assert not (reads & seen), "%s: %s share a copy with another group" % (file, group)
        seen |= reads
    # Nothing left over: one weight and one bias per group.
    assert len(g.initializer) == 2 * len(r.expect["shared_folds"]), \
        [t.name for t in g.initializer]


@pytest.mark.parametrize("file", [f for f in FILES if ENTRIES[f]["expect"].get("no_inf")])
def test_no_inf_written(run_fold, file):
    """FOLDING section 5: float16 overflow is reported, never written as inf."""
    r = run_fold(file)
    folded = r.folded()
    for g, _ in gen.all_graphs(folded.graph):
        for t in g.initializer:
            assert np.all(np.isfinite(gen.tensor_values(t))), "inf/nan in %r" % t.name
    for _, n in C.all_nodes(folded):
        if n.op_type == "Constant":
            assert np.all(np.isfinite(gen.constant_node_value(n)[0])), n.name


# ---------------------------------------------------------------------------
# onnxruntime

def ort_module():
    """tests/ortutil.py with a usable runtime; fails (never skips silently)."""
    if os.environ.get("BNFOLD_SKIP_ORT") == "1":
        pytest.skip("BNFOLD_SKIP_ORT=1: onnxruntime comparisons switched off by the user")
    try:
        import ortutil
    except ImportError as e:
        pytest.fail("tests/ortutil.py cannot be imported (%s): the onnxruntime checks must run"
                    % e, pytrace=False)
    ok = ortutil.ensure_ort() if hasattr(ortutil, "ensure_ort") else ortutil.ort_available()
    if not ok:
        pytest.fail("onnxruntime-node is not available (node + tests/ort); install it with "
                    "sh tests/ort/install.sh, or set BNFOLD_SKIP_ORT=1 to skip on purpose",
                    pytrace=False)
    return ortutil


def samples(entry):
    z = np.load(os.path.join(C.FIXTURES, entry["npz"]))
    for k in range(2):
        ins = {key[len("in%d/" % k):]: z[key] for key in z.files if key.startswith("in%d/" % k)}
        outs = {key[len("out%d/" % k):]: z[key] for key in z.files
                if key.startswith("out%d/" % k)}
        yield k, ins, outs


def compare_outputs(got, expected, entry, what):
    rtol, atol = entry["rtol"], entry["atol"]
    assert sorted(got) == sorted(expected), "%s: outputs %s" % (what, sorted(got))
    for name, exp in expected.items():
        g = np.asarray(got[name], dtype=np.float64)
        e = exp.astype(np.float64)
        assert g.shape == e.shape, "%s %r: shape %s vs %s" % (what, name, g.shape, e.shape)
        # FOLDING trap 11: NaN or inf is an error, never "equal".
        assert np.all(np.isfinite(g)), "%s %r: non-finite output" % (what, name)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol,
                                   err_msg="%s output %r (rtol %g, atol %g)" % (
                                       what, name, rtol, atol))


@pytest.mark.parametrize("file", FILES)
def test_ort_original_matches_numpy(file):
    """Validates the numpy reference of gen_fixtures.py against onnxruntime."""
    entry = ENTRIES[file]
    if not entry["ort"]:
        pytest.skip("onnxruntime cannot run %s: %s" % (file, entry["ort_reason"]))
    ort = ort_module()
    for k, ins, outs in samples(entry):
        got = ort.run_ort(os.path.join(C.FIXTURES, file), ins)
        compare_outputs(got, outs, entry, "%s sample %d (original in onnxruntime)" % (file, k))


@pytest.mark.parametrize("file", FILES)
def test_ort_folded_matches_numpy(run_fold, file):
    entry = ENTRIES[file]
    if not entry["ort_folded"]:
        pytest.skip("onnxruntime cannot run %s even folded: %s" % (file, entry["ort_reason"]))
    r = run_fold(file)
    r.folded()
    ort = ort_module()
    for k, ins, outs in samples(entry):
        got = ort.run_ort(r.out, ins)
        compare_outputs(got, outs, entry, "%s sample %d (folded in onnxruntime)" % (file, k))
