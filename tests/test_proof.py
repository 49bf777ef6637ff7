"""The proof's error model (src/check/errmodel.c, foldcheck.c, locate.c)
against an independent reference folder and deliberately wrong folds.

fold_reference() below folds Conv, ConvTranspose and Gemm + BatchNormalization
with onnx and numpy alone (float64 arithmetic, one rounding to float32),
written from the ONNX operator definitions, not from bnfold. Its folds must
be accepted by `bnfold --compare ORIGINAL FOLDED`. Its options turn it into
the wrong folders other tools have shipped (FOLDING.md section 6): epsilon
ignored or 1e-3 instead of 1e-5, the variance not square-rooted, a
ConvTranspose scaled along the wrong axis or ignoring its groups, a Gemm
scaled along the wrong axis, the conv bias dropped, one channel off by 1%,
a shared weight changed in place, a fold across a fan-out. Every one must
be caught by --compare (exit 1), which also names where: the first fold
whose own check fails (the per-fold verdict, bnf_check_fold_pair, the same
function the default run's per-fold check calls for each fold it made),
or the first intermediate value where the models diverge.

The boundary tests build models whose errors against the exact result
numpy computes, and place one just under and one just over the criterion
|B - R| <= 4 |A - R| + 8 u rms(R).
"""

import copy
import json
import os
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from conftest import describe, run
import ortutil

K, FLOOR_ULPS, U32 = 4.0, 8.0, 2.0 ** -24

RE_FIRST_FOLD = re.compile(r"^bnfold: first failing fold: (?:(?P<op>\S+) )?'(?P<bn>[^']*)' "
                           r"into (?P<target>\S+ '[^']*')$")
RE_DIVERGE = re.compile(r"^bnfold: first divergence: value '(?P<value>[^']*)' of (?P<op>\S+) "
                        r"'(?P<node>[^']*)' in (?P<where>.*) \(value (?P<pos>\d+) of (?P<n>\d+) "
                        r"in common\): .*$")
RE_FOLD = re.compile(r"^bnfold: fold of (?:(?P<op>\S+) )?'(?P<bn>[^']*)' into (?P<target>\S+ "
                     r"'[^']*'): (?:(?P<how>.*?), max abs err (?P<fabs>\S+) against the exact "
                     r"result \(original (?P<oabs>\S+)\)(?:; )?)?(?:computed exactly, "
                     r"(?P<ulps>\S+) units of rounding of the weights from the exact pair "
                     r"\(limit 16\))?(?P<failed> FAILED)?$")


@pytest.fixture(scope="module")
def ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available: onnxruntime cannot run")


def lines(regex, stderr):
    return [m for m in map(regex.match, stderr.splitlines()) if m]


# ---------------------------------------------------------------------------
# test models

def bn_params(rng, c):
    """Trained-looking statistics with variances near 1 (0.5 .. 1.5), where
    epsilon 1e-5 moves each scale by about 5e-6."""
    return [(rng.random(c) + 0.5).astype(np.float32),          # scale
            (rng.standard_normal(c) * 0.3).astype(np.float32),  # B
            (rng.standard_normal(c) * 0.5).astype(np.float32),  # mean
            (rng.random(c) + 0.5).astype(np.float32)]           # var


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def const(self, name, a):
        self.inits.append(numpy_helper.from_array(np.asarray(a, np.float32), name))
        return name

    def weight(self, name, shape, fan_in):
        return self.const(name, self.rng.standard_normal(shape) / np.sqrt(fan_in))

    def bn(self, name, x, c, y=None):
        names = [self.const("%s.%s" % (name, k), v)
                 for k, v in zip(("scale", "B", "mean", "var"), bn_params(self.rng, c))]
        y = y or name + "_out"
        self.nodes.append(helper.make_node("BatchNormalization", [x] + names, [y], name=name))
        return y

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name + "_out"], name=name, **attrs))
        return name + "_out"

    def model(self, inputs, outputs, opset=13):
        graph = helper.make_graph(self.nodes, "g", inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 7
        onnx.checker.check_model(m)
        return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, TP.FLOAT, shape)


def net_model():
    """x[1,8,10,10] -> Conv(+bias) -> BN -> Relu -> Conv(group 2) -> BN -> Relu
    -> ConvTranspose(16 -> 16, group 2, stride 2, +bias) -> BN -> Relu
    -> GlobalAveragePool -> Flatten -> Gemm(transB=1, C) -> BN -> Relu
    -> Gemm(transB=0) -> BN -> y[1,16]. 16 channels everywhere after the
    first conv, so that a fold along the wrong axis is still well-formed."""
    b = Builder(11)
    h = b.node("Conv", ["x", b.weight("conv_a.W", (16, 8, 3, 3), 72),
                        b.const("conv_a.b", b.rng.standard_normal(16) * 0.1)],
               "conv_a", pads=[1, 1, 1, 1])
    h = b.node("Relu", [b.bn("bn_a", h, 16)], "relu_a")
    h = b.node("Conv", [h, b.weight("conv_b.W", (16, 8, 3, 3), 72)], "conv_b",
               pads=[1, 1, 1, 1], group=2)
    h = b.node("Relu", [b.bn("bn_b", h, 16)], "relu_b")
    h = b.node("ConvTranspose", [h, b.weight("convt_c.W", (16, 8, 2, 2), 32),
                                 b.const("convt_c.b", b.rng.standard_normal(16) * 0.1)],
               "convt_c", strides=[2, 2], group=2)
    h = b.node("Relu", [b.bn("bn_c", h, 16)], "relu_c")
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h], "gap")], "flat")
    h = b.node("Gemm", [h, b.weight("gemm_d.W", (16, 16), 16),
                        b.const("gemm_d.C", b.rng.standard_normal(16) * 0.1)],
               "gemm_d", transB=1)
    h = b.node("Relu", [b.bn("bn_d", h, 16)], "relu_d")
    h = b.node("Gemm", [h, b.weight("gemm_e.W", (16, 16), 16)], "gemm_e")
    b.bn("bn_e", h, 16, y="y")
    return b.model([vi("x", [1, 8, 10, 10])], [vi("y", [1, 16])])


def shared_model():
    """Two convolutions read one weight; only the first is followed by a BN."""
    b = Builder(12)
    w = b.weight("shared.W", (8, 4, 3, 3), 36)
    h1 = b.node("Conv", ["x", w], "conv_s1", pads=[1, 1, 1, 1])
    y1 = b.bn("bn_s1", h1, 8)
    h2 = b.node("Conv", ["x", w], "conv_s2", pads=[1, 1, 1, 1])
    b.node("Add", [y1, h2], "sum")
    b.nodes[-1].output[0] = "y"
    return b.model([vi("x", [1, 4, 6, 6])], [vi("y", [1, 8, 6, 6])])


def fanout_model():
    """A convolution read by a BN and by a Relu: the BN cannot fold."""
    b = Builder(13)
    h = b.node("Conv", ["x", b.weight("conv_f.W", (8, 4, 3, 3), 36)], "conv_f",
               pads=[1, 1, 1, 1])
    y1 = b.bn("bn_f", h, 8)
    r = b.node("Relu", [h], "relu_f")
    b.node("Add", [y1, r], "sum")
    b.nodes[-1].output[0] = "y"
    return b.model([vi("x", [1, 4, 6, 6])], [vi("y", [1, 8, 6, 6])])


# ---------------------------------------------------------------------------
# the independent reference folder, and its wrong twins

def fold_reference(model, eps=None, sqrt=True, convt="right", gemm="right", conv_bias=True,
                   off_channel=None, shared="copy", fanout=False):
    """Fold every Conv/ConvTranspose/Gemm -> BatchNormalization of model.

    eps: None (the node's epsilon), or the value to use instead (0: ignored)
    sqrt: False divides by var + eps instead of its square root
    convt: "right", "axis0" (scale W's input-channel axis, as for Conv),
           "nogroups" (W[:, j] * s[j], as if group were 1)
    gemm: "right", or "wrong" (scale B's other axis)
    conv_bias: False forgets the layer's own bias (B' = t)
    off_channel: (bn name, channel): that channel's weights 1% too large
    shared: "copy" (a weight read by another node is folded into a copy) or
            "inplace" (changed where it is, under the other reader too)
    fanout: True folds even when the layer's output has another reader,
            which then reads the folded values
    """
    m = copy.deepcopy(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    arr = {n: numpy_helper.to_array(t).astype(np.float64) for n, t in inits.items()}

    def readers(value):
        return [n for n in g.node if value in n.input]

    def put(name, a, like):
        t = numpy_helper.from_array(np.asarray(a, np.float64).astype(np.float32), name)
        if name in inits:
            inits[name].CopyFrom(t)
        else:
            g.initializer.append(t)
            inits[name] = g.initializer[-1]

    for bn in [n for n in g.node if n.op_type == "BatchNormalization"]:
        layer = next((n for n in g.node if bn.input[0] in n.output), None)
        if layer is None or layer.op_type not in ("Conv", "ConvTranspose", "Gemm"):
            continue
        others = [n for n in readers(layer.output[0]) if n is not bn]
        if others and not fanout:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        e = np.float64(np.float32(attrs.get("epsilon", 1e-5))) if eps is None else eps
        scale, bias, mean, var = (arr[n] for n in bn.input[1:5])
        s = scale / (np.sqrt(var + e) if sqrt else (var + e))
        t = bias - mean * s
        w_name = layer.input[1]
        w = arr[w_name]
        la = {a.name: helper.get_attribute_value(a) for a in layer.attribute}
        if layer.op_type == "Conv":
            w2 = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
        elif layer.op_type == "ConvTranspose":
            group = la.get("group", 1)
            per = w.shape[0] // group
            if convt == "axis0":
                w2 = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
            else:
                w2 = w.copy()
                for ci in range(w.shape[0]):
                    g_idx = 0 if convt == "nogroups" else ci // per
                    w2[ci] *= s[g_idx * w.shape[1]:(g_idx + 1) * w.shape[1]].reshape(
                        (-1,) + (1,) * (w.ndim - 2))
        else:  # Gemm: column n of op(B) is output channel n
            trans_b = la.get("transB", 0)
            along_rows = bool(trans_b) != (gemm == "wrong")
            w2 = w * (s[:, None] if along_rows else s[None, :])
        if off_channel and off_channel[0] == bn.name:
            c = off_channel[1]
            if layer.op_type == "Gemm" and not la.get("transB", 0):
                w2[:, c] *= 1.01
            else:
                w2[c] *= 1.01
        has_bias = len(layer.input) > 2 and layer.input[2]
        b_old = arr[layer.input[2]] if has_bias else np.zeros_like(s)
        if layer.op_type == "Gemm":
            b_old = b_old * la.get("beta", 1.0)
        b2 = (b_old if conv_bias else 0) * s + t
        # A weight read by another node is folded into a copy (unless
        # the wrong folder changes it in place).
        shared_w = len(readers(w_name)) > 1
        new_w = w_name if (shared == "inplace" or not shared_w) else w_name + ".folded"
        put(new_w, w2, w)
        layer.input[1] = new_w
        b_name = (layer.input[2] if has_bias else layer.name + ".bias") + ".folded"
        put(b_name, b2, s)
        while len(layer.input) < 3:
            layer.input.append("")
        layer.input[2] = b_name
        if layer.op_type == "Gemm":
            for a in layer.attribute:
                if a.name == "beta":
                    a.f = 1.0
        old_out = layer.output[0]
        layer.output[0] = bn.output[0]
        for n in others:  # the fan-out's other readers now see folded values
            for i, v in enumerate(n.input):
                if v == old_out:
                    n.input[i] = bn.output[0]
        g.node.remove(bn)
    used = {v for n in g.node for v in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.checker.check_model(m)
    return m


def save(model, tmp_path, name):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def ort_outputs(path, seed=3):
    x = np.random.default_rng(seed).standard_normal(
        [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    ).astype(np.float32)
    return ortutil.run_ort(path, {"x": x})["y"]


# ---------------------------------------------------------------------------
# the reference folder's folds are accepted

MODELS = {"net": net_model, "shared": shared_model, "fanout": fanout_model}


@pytest.mark.parametrize("which", sorted(MODELS))
def test_reference_folds_accepted(bnfold, ort, tmp_path, which):
    model = MODELS[which]()
    orig = save(model, tmp_path, "orig.onnx")
    folded = save(fold_reference(model), tmp_path, "ref.onnx")
    # onnxruntime agrees that the reference folder is right.
    want, got = ort_outputs(orig), ort_outputs(folded)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    proc = run(bnfold, ["--compare", orig, folded, "-v"])
    assert proc.returncode == 0, describe(proc)
    assert "bnfold: equal: outputs within " in proc.stderr
    folds = lines(RE_FOLD, proc.stderr)
    n_bn = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    n_folded = n_bn - sum(n.op_type == "BatchNormalization"
                          for n in onnx.load(folded).graph.node)
    # Every layer the reference folded is paired with its chain and passes.
    assert len(folds) == n_folded, proc.stderr
    for f in folds:
        assert not f["failed"] and float(f["ulps"]) <= 16, f.string


def test_default_run_folds_as_the_reference(bnfold, tmp_path):
    # bnfold's own fold of the same network passes its default check, and
    # --compare of bnfold's fold against the reference folder's: equal.
    model = net_model()
    orig = save(model, tmp_path, "orig.onnx")
    out = str(tmp_path / "bnfold.onnx")
    proc = run(bnfold, [orig, "-o", out, "-v"])
    assert proc.returncode == 0, describe(proc)
    assert len(lines(RE_FOLD, proc.stderr)) == 5
    ref = save(fold_reference(model), tmp_path, "ref.onnx")
    cmp = run(bnfold, ["--compare", ref, out])
    assert cmp.returncode == 0, describe(cmp)


# ---------------------------------------------------------------------------
# wrong folds are caught, and named

# mutation id -> (model, fold_reference options, the fold named first or
# None, where it diverges first or None)
MUTATIONS = {
    "epsilon-ignored": ("net", dict(eps=0.0), "bn_a", "bn_a_out"),
    "epsilon-1e-3": ("net", dict(eps=1e-3), "bn_a", "bn_a_out"),
    "variance-not-square-rooted": ("net", dict(sqrt=False), "bn_a", "bn_a_out"),
    "convtranspose-wrong-axis": ("net", dict(convt="axis0"), "bn_c", "bn_c_out"),
    "convtranspose-ignores-groups": ("net", dict(convt="nogroups"), "bn_c", "bn_c_out"),
    "gemm-wrong-axis": ("net", dict(gemm="wrong"), "bn_d", "bn_d_out"),
    "conv-bias-dropped": ("net", dict(conv_bias=False), "bn_a", "bn_a_out"),
    "one-channel-off-1pc": ("net", dict(off_channel=("bn_e", 5)), "bn_e", "y"),
    "shared-weight-in-place": ("shared", dict(shared="inplace"), "conv_s2", "conv_s2_out"),
    "fold-across-fan-out": ("fanout", dict(fanout=True), None, "relu_f_out"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_wrong_fold_caught(bnfold, ort, tmp_path, mutation):
    which, options, first_fold, diverges_at = MUTATIONS[mutation]
    model = MODELS[which]()
    orig = save(model, tmp_path, "orig.onnx")
    wrong = save(fold_reference(model, **options), tmp_path, "wrong.onnx")
    # Precondition, by onnxruntime: the mutation really changes the output
    # beyond float32 rounding (1e-6 of its scale).
    want, got = ort_outputs(orig), ort_outputs(wrong)
    assert np.abs(got - want).max() > 1e-6 * np.abs(want).max()

    proc = run(bnfold, ["--compare", orig, wrong])
    assert proc.returncode == 1, describe(proc)
    assert "bnfold: different: " in proc.stderr
    first = lines(RE_FIRST_FOLD, proc.stderr)
    if first_fold is None:
        assert not first, proc.stderr
    else:
        (f,) = first
        assert f["bn"] == first_fold, proc.stderr
        # The per-fold verdict: the fold computed exactly is far from the
        # exact pair in units of rounding of its weights.
        failed = [m for m in lines(RE_FOLD, proc.stderr) if m["failed"]]
        assert failed and failed[0]["bn"] == first_fold
        assert float(failed[0]["ulps"]) > 16, failed[0].string
    div = lines(RE_DIVERGE, proc.stderr)
    if div:
        assert div[0]["value"] == diverges_at, proc.stderr
    else:
        # The outputs stay within the error model (epsilon's 5e-6 can hide
        # in the rounding of the graph): the per-fold verdict decided.
        assert first_fold is not None and "FAILED" not in "".join(
            l for l in proc.stderr.splitlines() if l.startswith("bnfold: output"))


def test_epsilon_ignored_is_below_the_graph_rounding_but_caught(bnfold, tmp_path):
    # Epsilon ignored moves every weight by about 5e-6 (84 units of float32
    # rounding): per fold, computed exactly, that is far beyond the 16
    # units allowed, whatever the rounding of the whole graph.
    model = net_model()
    orig = save(model, tmp_path, "orig.onnx")
    wrong = save(fold_reference(model, eps=0.0), tmp_path, "wrong.onnx")
    proc = run(bnfold, ["--compare", orig, wrong, "-v"])
    assert proc.returncode == 1, describe(proc)
    folds = {m["bn"]: m for m in lines(RE_FOLD, proc.stderr)}
    assert sorted(folds) == ["bn_a", "bn_b", "bn_c", "bn_d", "bn_e"]
    for m in folds.values():
        assert m["failed"] and float(m["ulps"]) > 16, m.string


def test_wrong_channel_hidden_from_the_outputs_is_caught_per_fold(bnfold, ort, tmp_path):
    # One channel of the grouped conv 1% off: on onnxruntime's input the
    # output moves by float32 rounding only (the channel hardly reaches it
    # through the ReLUs), yet the fold's own check names it.
    model = net_model()
    orig = save(model, tmp_path, "orig.onnx")
    wrong = save(fold_reference(model, off_channel=("bn_b", 5)), tmp_path, "wrong.onnx")
    want, got = ort_outputs(orig), ort_outputs(wrong)
    assert np.abs(got - want).max() < 1e-6 * np.abs(want).max()
    proc = run(bnfold, ["--compare", orig, wrong])
    assert proc.returncode == 1, describe(proc)
    (f,) = lines(RE_FIRST_FOLD, proc.stderr)
    assert (f["bn"], f["target"]) == ("bn_b", "Conv 'conv_b'")


# ---------------------------------------------------------------------------
# the boundary of the criterion, computed by numpy

def scale_model(c, d=None):
    """y = x * c (+ d): float32 rounds x * c once (the original's error)."""
    b = Builder(0)
    h = b.node("Mul", ["x", b.const("c", c)], "mul")
    if d is not None:
        h = b.node("Add", [h, b.const("d", d)], "add")
    b.nodes[-1].output[0] = "y"
    return b.model([vi("x", [64])], [vi("y", [64])])


def criterion(x, c, d):
    """The error model's elementwise test, in numpy: R exact (float64), A
    and B the float32 results; returns (max|B-R|, limit, normwise ok)."""
    x64, c64 = x.astype(np.float64), np.float64(np.float32(c))
    r = x64 * c64
    a = (x * np.float32(c)).astype(np.float32)
    bb = a if d is None else (a + d.astype(np.float32)).astype(np.float32)
    rms = np.sqrt(np.mean(r * r))
    limit = K * np.abs(a - r).max() + FLOOR_ULPS * U32 * rms
    norm_b = np.sqrt(np.sum((bb - r) ** 2) / np.sum(r * r))
    norm_a = np.sqrt(np.sum((a - r) ** 2) / np.sum(r * r))
    return np.abs(bb - r).max(), limit, norm_b <= K * norm_a + FLOOR_ULPS * U32


def boundary_perturbations(x, c, i):
    """Perturbations d of element i, by whole float32 steps of A_i, that put
    max|B - R| just under and just over the limit (numpy's verdict)."""
    a_i = np.float32(x[i] * np.float32(c))
    under = over = None
    for k in range(1, 200):
        d = np.zeros_like(x)
        d[i] = np.float32(np.nextafter(a_i, np.float32(np.inf)) - a_i) * k
        err, limit, norm_ok = criterion(x, c, d)
        assert norm_ok
        if err <= limit:
            under = (d, err, limit)
        else:
            over = (d, err, limit)
            break
    return under, over


@pytest.mark.parametrize("c", [1.0, 1.0 / 3.0], ids=["original-exact", "original-rounded"])
def test_boundary_just_under_and_just_over(bnfold, tmp_path, c):
    # c = 1: the original is exact in float32 and the floor (8 units of the
    # output's RMS) alone is the limit; c = 1/3: the original rounds, and
    # K = 4 times its error is most of it.
    x = np.random.default_rng(7).uniform(1.0, 2.0, 64).astype(np.float32)
    np.save(str(tmp_path / "x.npy"), x)
    i = int(np.argmax(x))
    under, over = boundary_perturbations(x, c, i)
    assert under is not None and over is not None
    # One float32 step apart, straddling the limit.
    assert under[1] <= under[2] < over[1]
    orig = save(scale_model(c), tmp_path, "orig.onnx")
    for (d, err, limit), code in ((under, 0), (over, 1)):
        cand = save(scale_model(c, d), tmp_path, "cand.onnx")
        proc = run(bnfold, ["--compare", orig, cand, "--input", "x=%s" % (tmp_path / "x.npy")])
        assert proc.returncode == code, "err %.9g limit %.9g\n%s" % (err, limit, describe(proc))


# ---------------------------------------------------------------------------
# the per-fold check at its capped shape: every weight, borders included

# kind -> (op, W shape, attributes, input shape). Each layer is followed by
# a BN "bn" whose output is y.
LAYERS = {
    "dilated": ("Conv", (8, 4, 3, 3), dict(dilations=[4, 4], pads=[4, 4, 4, 4]),
                [1, 4, 20, 20]),
    "dilated-odd-pads": ("Conv", (8, 4, 3, 3), dict(dilations=[3, 3], pads=[2, 1, 2, 1]),
                         [1, 4, 16, 16]),
    "dilated-valid": ("Conv", (8, 4, 3, 3), dict(dilations=[4, 4], auto_pad="VALID"),
                      [1, 4, 20, 20]),
    "conv3d": ("Conv", (8, 4, 3, 3, 3), dict(pads=[1] * 6), [1, 4, 6, 8, 8]),
    "strided": ("Conv", (8, 4, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), [1, 4, 11, 11]),
    "same-upper": ("Conv", (8, 4, 4, 4), dict(strides=[2, 2], auto_pad="SAME_UPPER"),
                   [1, 4, 10, 10]),
    "convtranspose": ("ConvTranspose", (4, 8, 3, 3),
                      dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
                      [1, 4, 6, 6]),
    # Pads wider than the kernel crop taps away at a short input.
    "convtranspose-wide-pads": ("ConvTranspose", (4, 8, 3, 3), dict(pads=[3, 3, 3, 3]),
                                [1, 4, 10, 10]),
}


# Run as one residue class of themselves (dilation 1, pads divided by it):
# unit strides, and pads that are multiples of the dilation (explicit, or
# VALID's none).
UNDILATED = {"dilated", "dilated-valid"}


def layer_model(kind, bn_first=False):
    """x -> layer -> BN -> y, or with bn_first x -> BN -> layer -> y."""
    op, w_shape, attrs, x_shape = LAYERS[kind]
    b = Builder(21)
    w = b.weight("layer.W", w_shape, int(np.prod(w_shape[1:])))
    bias = b.const("layer.b", b.rng.standard_normal(w_shape[1 if op != "Conv" else 0]) * 0.1)
    if bn_first:
        h = b.bn("bn", "x", x_shape[1])
        b.node(op, [h, w, bias], "layer", **attrs)
    else:
        h = b.node(op, ["x", w, bias], "layer", **attrs)
        b.bn("bn", h, w_shape[0] if op == "Conv" else w_shape[1])
    b.nodes[-1].output[0] = "y"
    return b.model([vi("x", x_shape)], [vi("y", [None] * len(x_shape))])


def off_tap(model, factor=1e-3):
    """The reference fold with one weight wrong: output channel 1's first
    kernel tap (the corner, which a padded border reads least), every
    input channel, times 1 + factor."""
    m = fold_reference(model)
    layer = next(n for n in m.graph.node if n.name == "layer")
    t = next(t for t in m.graph.initializer if t.name == layer.input[1])
    w = numpy_helper.to_array(t).copy()
    corner = (0,) * (w.ndim - 2)
    if layer.op_type == "Conv":
        w[(1, slice(None)) + corner] *= 1 + factor
    else:  # ConvTranspose: W is C_in x C_out x k...
        w[(slice(None), 1) + corner] *= 1 + factor
    t.CopyFrom(numpy_helper.from_array(w, t.name))
    return m


def axis_geometry(kind, undilated, i, length):
    """(kernel, dilation, stride, pad_begin, pad_end) of spatial axis i of
    the layer as the check ran it: dilations read as 1 and pads divided by
    them when undilated; auto_pad SAME_UPPER's pads at input length."""
    _, w_shape, attrs, x_shape = LAYERS[kind]
    n = len(w_shape) - 2
    k = w_shape[2 + i]
    d = attrs.get("dilations", [1] * n)[i]
    s = attrs.get("strides", [1] * n)[i]
    pads = attrs.get("pads", [0] * 2 * n)
    pb, pe = pads[i], pads[n + i]
    if attrs.get("auto_pad", "").startswith("SAME_"):
        total = max(0, (-(-length // s) - 1) * s + (k - 1) * d + 1 - length)
        pb = total // 2 if attrs["auto_pad"] == "SAME_UPPER" else total - total // 2
        pe = total - pb
    if attrs.get("auto_pad") == "VALID":
        pb = pe = 0
    if undilated:
        pb, pe, d = pb // d, pe // d, 1
    return k, d, s, pb, pe


def axis_reads(kind, undilated, i, length):
    """By index arithmetic on the Conv's definition: per tap, at how many
    output positions it reads the input (not padding); whether some
    position reads every tap from the input; whether the first and the
    last position read padding."""
    k, d, s, pb, pe = axis_geometry(kind, undilated, i, length)
    n_out = (length + pb + pe - (k - 1) * d - 1) // s + 1
    reads = [[0 <= o * s - pb + t * d < length for t in range(k)] for o in range(n_out)]
    per_tap = [sum(r[t] for r in reads) for t in range(k)]
    return per_tap, any(all(r) for r in reads), not all(reads[0]), not all(reads[-1]), (pb, pe)


def fold_json(bnfold, tmp_path, args):
    rep = tmp_path / "rep.json"
    proc = run(bnfold, args + ["--json", str(rep)])
    with open(str(rep)) as f:
        return proc, json.load(f)["check"]["folds"]


@pytest.mark.parametrize("kind", sorted(k for k in LAYERS if LAYERS[k][0] == "Conv"))
def test_capped_conv_shape_reads_every_weight_and_both_borders(bnfold, tmp_path, kind):
    op, w_shape, attrs, x_shape = LAYERS[kind]
    orig = save(layer_model(kind), tmp_path, "orig.onnx")
    proc, folds = fold_json(bnfold, tmp_path, [orig, "-o", str(tmp_path / "out.onnx")])
    assert proc.returncode == 0, describe(proc)
    (f,) = folds
    shape = f["input_shape"]
    assert shape[:2] == [1, w_shape[1]] and len(shape) == len(w_shape), f
    # Undilated exactly when dilated with unit strides and pads that are
    # multiples of the dilation.
    assert f["undilated"] == (kind in UNDILATED), f
    for i, length in enumerate(shape[2:]):
        per_tap, interior, first_pads, last_pads, (pb, pe) = axis_reads(
            kind, f["undilated"], i, length)
        assert min(per_tap) >= 2, (i, length, per_tap)
        assert interior, (i, length)
        assert first_pads == (pb > 0) and last_pads == (pe > 0), (i, length, pb, pe)
        # The cap: a few strides past the kernel's extent (as run), never
        # the layer's full activation, never the dilated extent.
        k, d, s, _, _ = axis_geometry(kind, f["undilated"], i, length)
        assert length <= (k - 1) * d + 1 + 2 * s, (i, length)
        assert length < x_shape[2 + i]


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_one_wrong_tap_caught_at_the_capped_shape(bnfold, ort, tmp_path, kind):
    model = layer_model(kind)
    orig = save(model, tmp_path, "orig.onnx")
    right = save(fold_reference(model), tmp_path, "right.onnx")
    wrong = save(off_tap(model), tmp_path, "wrong.onnx")
    want, got = ort_outputs(orig), ort_outputs(wrong)
    assert np.abs(got - want).max() > 1e-6 * np.abs(want).max()  # by onnxruntime
    # The shape the fold's check runs at (--compare cuts the same chains
    # out and runs them at the same shape; it writes no JSON report).
    proc, folds = fold_json(bnfold, tmp_path, [orig, "-o", str(tmp_path / "out.onnx")])
    assert proc.returncode == 0, describe(proc)
    (f,) = folds
    assert f["undilated"] == (kind in UNDILATED), f
    assert np.prod(f["input_shape"][2:]) < np.prod(LAYERS[kind][3][2:]), f
    proc = run(bnfold, ["--compare", orig, right, "-v"])
    assert proc.returncode == 0, describe(proc)
    assert [m["failed"] for m in lines(RE_FOLD, proc.stderr)] == [None], proc.stderr
    proc = run(bnfold, ["--compare", orig, wrong, "-v"])
    assert proc.returncode == 1, describe(proc)
    (first,) = lines(RE_FIRST_FOLD, proc.stderr)
    assert first["bn"] == "bn", proc.stderr
    (m,) = lines(RE_FOLD, proc.stderr)
    assert m["failed"] and float(m["ulps"]) > 16, m.string


def fold_before_ignoring_pads(model):
    """x -> BN -> Conv(pads) folded as if nothing padded: W' = W s (per
    input channel), B' = B + sum W t. Exact where a position reads no
    padding; at the borders the padded zeros, which were 0 after the BN
    and not t, are wrong (the trap bnfold's before fold refuses)."""
    m = copy.deepcopy(model)
    g = m.graph
    arr = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    bn = next(n for n in g.node if n.op_type == "BatchNormalization")
    layer = next(n for n in g.node if n.op_type == "Conv")
    scale, bias, mean, var = (arr[n] for n in bn.input[1:5])
    s = scale / np.sqrt(var + np.float64(np.float32(1e-5)))
    t = bias - mean * s
    w, b = arr[layer.input[1]], arr[layer.input[2]]
    w2 = w * s.reshape((1, -1) + (1,) * (w.ndim - 2))
    b2 = b + (w * t.reshape((1, -1) + (1,) * (w.ndim - 2))).sum(axis=tuple(range(1, w.ndim)))
    keep = [i for i in g.initializer if i.name not in bn.input[1:]]
    for i in keep:
        if i.name == layer.input[1]:
            i.CopyFrom(numpy_helper.from_array(w2.astype(np.float32), i.name))
        if i.name == layer.input[2]:
            i.CopyFrom(numpy_helper.from_array(b2.astype(np.float32), i.name))
    del g.initializer[:]
    g.initializer.extend(keep)
    layer.input[0] = bn.input[0]
    g.node.remove(bn)
    onnx.checker.check_model(m)
    return m


@pytest.mark.parametrize("kind", ["strided", "dilated", "conv3d"])
def test_error_only_at_the_borders_caught_at_the_capped_shape(bnfold, ort, tmp_path, kind):
    model = layer_model(kind, bn_first=True)
    orig = save(model, tmp_path, "orig.onnx")
    wrong = save(fold_before_ignoring_pads(model), tmp_path, "wrong.onnx")
    # By onnxruntime: the outputs that read no padding agree, the border
    # ones do not.
    want, got = ort_outputs(orig), ort_outputs(wrong)
    diff = np.abs(got - want) > 1e-5 * np.abs(want).max()
    x_shape = LAYERS[kind][3]
    inner = np.ones(want.shape[2:], bool)
    for i, n_out in enumerate(want.shape[2:]):
        k, d, s, pb, _ = axis_geometry(kind, False, i, x_shape[2 + i])
        free = [all(0 <= o * s - pb + t * d < x_shape[2 + i] for t in range(k))
                for o in range(n_out)]
        inner &= np.array(free).reshape([-1 if j == i else 1 for j in range(inner.ndim)])
    assert diff.any() and not diff[:, :, inner].any()
    proc = run(bnfold, ["--compare", orig, wrong, "-v"])
    assert proc.returncode == 1, describe(proc)
    (first,) = lines(RE_FIRST_FOLD, proc.stderr)
    assert first["target"] == "Conv 'layer'", proc.stderr
    (m,) = lines(RE_FOLD, proc.stderr)
    assert m["failed"] and float(m["ulps"]) > 16, m.string


def test_folds_in_subgraphs_each_checked_with_the_main_graph_indexed_once(bnfold):
    # Both branches of the If hold a fold: each pair is found in its
    # subgraph and checked on its own (the main graphs are indexed once for
    # all folds; each search indexes only the subgraph on its path and
    # releases it before the next).
    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "if_subgraph.onnx")
    proc = run(bnfold, [fixture, "-n", "-v", "--check-memory", "1"])
    assert proc.returncode == 0, describe(proc)
    folds = {m["bn"]: m for m in lines(RE_FOLD, proc.stderr)}
    assert sorted(folds) == ["else_bn", "then_bn"], proc.stderr
    for m in folds.values():
        assert not m["failed"] and float(m["ulps"]) <= 16, m.string


def test_convtranspose_with_pads_wider_than_the_kernel_checked_per_fold(bnfold, tmp_path):
    # At 3 input positions these pads left a negative output size: the
    # per-fold check (alone under a 1-byte budget) failed the run with an
    # evaluator error. Its input now grows until every tap is kept.
    orig = save(layer_model("convtranspose-wide-pads"), tmp_path, "orig.onnx")
    proc, folds = fold_json(bnfold, tmp_path, [orig, "-n", "-v", "--check-memory", "1"])
    assert proc.returncode == 0, describe(proc)
    (f,) = folds
    assert f["checked"] and f["pass"], f
    # Index arithmetic on ConvTranspose's definition: input i and tap t
    # write output i + t - 3 of (L - 1) + 3 - 6 outputs.
    length = f["input_shape"][2]
    kept = [sum(0 <= i + t - 3 < length - 4 for i in range(length)) for t in range(3)]
    assert min(kept) >= 2 and length < 10, (length, kept)


@pytest.mark.parametrize("attrs", [dict(pads=[10 ** 9] * 4), dict(dilations=[2 ** 40, 1]),
                                   dict(strides=[2 ** 62, 1])], ids=["pads", "dilation", "stride"])
def test_hostile_conv_geometry_does_not_stall_the_shape_search(bnfold, tmp_path, attrs):
    # The per-fold shape is searched over lengths near the kernel's extent,
    # its pads and strides: values no layer has must neither overflow nor
    # make that search run for ever. The fold is then unchecked or the
    # check cannot run: a failure, never a pass and never a hang.
    b = Builder(3)
    h = b.node("Conv", ["x", b.weight("W", (4, 4, 3, 3), 36)], "conv", **attrs)
    b.bn("bn", h, 4, y="y")
    graph = helper.make_graph(b.nodes, "g", [vi("x", [1, 4, 8, 8])], [vi("y", None)], b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    path = save(m, tmp_path, "hostile.onnx")
    for extra in ([], ["--check-memory", "1"]):
        proc = run(bnfold, [path, "-n"] + extra)
        assert proc.returncode in (1, 2), describe(proc)
