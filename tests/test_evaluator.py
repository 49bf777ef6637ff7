"""Differential tests of bnfold's eval-mode evaluator (`bnfold --run`).

Every model is run by bnfold on the inputs stored next to it, and each graph
output is compared with two independent references:

  * onnxruntime (tests/ortutil.py), on the same inputs;
  * the outputs stored in the fixture's .npz: numpy-computed by
    tests/fixtures/gen_fixtures.py for tests/fixtures/*.onnx, torch's own
    eval-mode outputs for tests/fixtures/torch/*.onnx.

The torch exports are also folded by bnfold, and the original and the folded
model are compared under onnxruntime, so the fold is judged by a runtime that
is not bnfold's.

bnfold evaluates BatchNormalization in eval mode (running statistics) by
design, also where the graph asks for training mode.  The fixtures whose
stored outputs use batch statistics are therefore compared with an eval-mode
copy of the same graph (training_mode=0 / is_test=1), computed by the numpy
evaluator of gen_fixtures.py and by onnxruntime, and the test also asserts
that bnfold's output is NOT the batch-statistics output.

Tolerances, |bnfold - reference| <= atol + rtol * |reference| per element:
  float32   rtol 1e-4, atol 1e-5
  float64   rtol 1e-9, atol 1e-12 (the manifest's values for the f64 fixtures)
  float16   rtol 1e-2, atol 1e-2
  bfloat16  rtol 5e-2, atol 5e-2
"""

import copy
import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import FIXTURES, GOOD, describe, gen, run
import ortutil

TORCH_DIR = os.path.join(FIXTURES, "torch")
TORCH_MODELS = sorted(f[:-5] for f in os.listdir(TORCH_DIR) if f.endswith(".onnx"))

TOL = {
    onnx.TensorProto.FLOAT: (1e-4, 1e-5),
    onnx.TensorProto.DOUBLE: (1e-9, 1e-12),
    onnx.TensorProto.FLOAT16: (1e-2, 1e-2),
    onnx.TensorProto.BFLOAT16: (5e-2, 5e-2),
}
NP_OF = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.BOOL: np.bool_,
}

# Generated fixtures whose stored outputs were computed in training mode
# (batch statistics) for at least one BatchNormalization.
TRAINING_FIXTURES = {"bn_opset6.onnx", "guard_training_mode14.onnx",
                     "guard_training_mode15.onnx"}


@pytest.fixture(scope="module")
def ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available: onnxruntime cannot run")


# ---------------------------------------------------------------------------
# helpers

def out_types(model):
    return {o.name: o.type.tensor_type.elem_type for o in model.graph.output}


def in_types(model):
    return {i.name: i.type.tensor_type.elem_type for i in model.graph.input}


def write_input(directory, idx, name, arr, elem_type, fmt):
    """Write one input as .npy or as a TensorProto .pb; returns NAME=FILE."""
    if fmt == "pb" or elem_type == onnx.TensorProto.BFLOAT16:
        path = os.path.join(directory, "in%d.pb" % idx)
        if elem_type == onnx.TensorProto.BFLOAT16:
            t = gen.make_tensor(name, np.asarray(arr, dtype=np.float64), elem_type)
        else:
            t = numpy_helper.from_array(np.asarray(arr, dtype=NP_OF[elem_type]), name)
        with open(path, "wb") as f:
            f.write(t.SerializeToString())
    else:
        path = os.path.join(directory, "in%d.npy" % idx)
        np.save(path, np.asarray(arr, dtype=NP_OF[elem_type]), allow_pickle=False)
    return "%s=%s" % (name, path)


def bnfold_run(bnfold, model_path, inputs, tmp_path, fmt="npy", extra=()):
    """`bnfold --run` on model_path with inputs {name: array}: {output: ndarray}.

    Outputs are decoded with gen_fixtures.tensor_values (float64; bfloat16
    understood) and checked to carry the element type the graph declares.
    """
    model = onnx.load(model_path)
    itypes = in_types(model)
    work = tmp_path / ("run%d" % len(list(tmp_path.iterdir())))
    work.mkdir()
    outdir = work / "out"
    outdir.mkdir()
    args = ["--run", model_path, "--output-dir", str(outdir)] + list(extra)
    for k, (name, arr) in enumerate(inputs.items()):
        args += ["--input", write_input(str(work), k, name, arr, itypes[name], fmt)]
    proc = run(bnfold, args)
    assert proc.returncode == 0, describe(proc)
    types = out_types(model)
    want_files = {n.replace("/", "_") + ".pb" for n in types}
    assert set(os.listdir(outdir)) == want_files, describe(proc)
    res = {}
    for name, dt in types.items():
        t = onnx.TensorProto()
        with open(os.path.join(outdir, name.replace("/", "_") + ".pb"), "rb") as f:
            t.ParseFromString(f.read())
        assert t.data_type == dt, "output %r: element type %d, graph says %d" % (
            name, t.data_type, dt)
        res[name] = gen.tensor_values(t)
    return res


def assert_close(got, want, dt, what, tol=None):
    rtol, atol = tol or TOL[dt]
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, "%s: shape %s, expected %s" % (what, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=False,
                               err_msg=what)


def manifest_samples(entry):
    """[(inputs, expected outputs)] per sample k of a generated fixture."""
    z = np.load(os.path.join(FIXTURES, entry["npz"]))
    out = []
    for k in range(2):
        ins = {key.split("/", 1)[1]: z[key] for key in z.files
               if key.startswith("in%d/" % k)}
        outs = {key.split("/", 1)[1]: z[key] for key in z.files
                if key.startswith("out%d/" % k)}
        assert ins and outs, entry["npz"]
        out.append((ins, outs))
    return out


def torch_samples(name):
    z = np.load(os.path.join(TORCH_DIR, name + ".npz"))
    out = []
    for k in range(2):
        ins = {key.split("/", 1)[1]: z[key] for key in z.files
               if key.startswith("input_%d/" % k)}
        outs = {key.split("/", 1)[1]: z[key] for key in z.files
                if key.startswith("output_%d/" % k)}
        assert ins and outs, name
        out.append((ins, outs))
    return out


def ort_feeds(model, inputs):
    """Inputs in the element type the graph declares (ORT is strict about it)."""
    itypes = in_types(model)
    return {n: np.asarray(a, dtype=NP_OF[itypes[n]]) for n, a in inputs.items()}


def eval_mode_copy(model):
    """The same graph with every BatchNormalization switched to eval mode."""
    m = copy.deepcopy(model)
    opset = gen.model_opset(m)
    graph_outs = {o.name for g, _ in gen.all_graphs(m.graph) for o in g.output}
    bns = [n for g, _ in gen.all_graphs(m.graph) for n in g.node
           if n.op_type == "BatchNormalization"]
    assert bns
    for node in bns:
        keep = [a for a in node.attribute if a.name not in ("training_mode", "is_test")]
        del node.attribute[:]
        node.attribute.extend(keep)
        if opset < 7:
            node.attribute.extend([helper.make_attribute("is_test", 1)])
        # Eval mode has a single output; the running-statistics outputs of a
        # training-mode node are never graph outputs in these fixtures.
        assert not (set(node.output[1:]) & graph_outs)
        del node.output[1:]
    return m


# ---------------------------------------------------------------------------
# generated fixtures

# Fixtures bnfold --run refuses, with the exit status and a stderr fragment:
# a 1-element BatchNormalization scale is not the shape (C) the operator
# requires (onnxruntime rejects it as well).
REFUSED = {
    "guard_shape_mismatch.onnx": "('bn.scale') has 1 values",
}

ORT_IDS = [e["file"] for e in GOOD if e["ort"] and e["file"] not in REFUSED]
NO_ORT_IDS = [e["file"] for e in GOOD if not e["ort"] and e["file"] not in REFUSED]
BY_FILE = {e["file"]: e for e in GOOD}


@pytest.mark.parametrize("fixture", [f for f in ORT_IDS if f not in TRAINING_FIXTURES])
def test_run_matches_ort_and_numpy(bnfold, ort, tmp_path, fixture):
    entry = BY_FILE[fixture]
    path = os.path.join(FIXTURES, fixture)
    model = onnx.load(path)
    types = out_types(model)
    for k, (ins, want) in enumerate(manifest_samples(entry)):
        got = bnfold_run(bnfold, path, ins, tmp_path)
        ref = ortutil.run_ort(path, ort_feeds(model, ins))
        assert set(got) == set(want) == set(ref)
        for name, dt in types.items():
            assert_close(got[name], ref[name], dt, "%s sample %d output %r vs onnxruntime"
                         % (fixture, k, name))
            assert_close(got[name], want[name], dt, "%s sample %d output %r vs numpy"
                         % (fixture, k, name))


@pytest.mark.parametrize("fixture", [f for f in NO_ORT_IDS if f not in TRAINING_FIXTURES])
def test_run_matches_numpy_where_ort_cannot_run(bnfold, tmp_path, fixture):
    # onnxruntime has no kernel for these (manifest "ort_reason"); the numpy
    # outputs of the generator are still an independent reference.
    entry = BY_FILE[fixture]
    path = os.path.join(FIXTURES, fixture)
    types = out_types(onnx.load(path))
    for k, (ins, want) in enumerate(manifest_samples(entry)):
        got = bnfold_run(bnfold, path, ins, tmp_path)
        assert set(got) == set(want)
        for name, dt in types.items():
            assert_close(got[name], want[name], dt, "%s sample %d output %r vs numpy"
                         % (fixture, k, name))


@pytest.mark.parametrize("fixture", sorted(REFUSED))
def test_run_refuses(bnfold, tmp_path, fixture):
    entry = BY_FILE[fixture]
    ins, _ = manifest_samples(entry)[0]
    path = os.path.join(FIXTURES, fixture)
    itypes = in_types(onnx.load(path))
    outdir = tmp_path / "out"
    outdir.mkdir()
    args = ["--run", path, "--output-dir", str(outdir)]
    for k, (name, arr) in enumerate(ins.items()):
        args += ["--input", write_input(str(tmp_path), k, name, arr, itypes[name], "npy")]
    proc = run(bnfold, args)
    assert proc.returncode == 2, describe(proc)
    assert REFUSED[fixture] in proc.stderr, describe(proc)
    assert os.listdir(outdir) == [], "nothing may be written on error"


@pytest.mark.parametrize("fixture", sorted(TRAINING_FIXTURES))
def test_run_training_mode_fixture_is_eval_mode(bnfold, ort, tmp_path, fixture):
    # The stored outputs use batch statistics; bnfold uses running statistics
    # by design.  Reference: the eval-mode copy of the graph, in numpy (and in
    # onnxruntime when it has a kernel for that BatchNormalization version).
    entry = BY_FILE[fixture]
    path = os.path.join(FIXTURES, fixture)
    model = onnx.load(path)
    evalm = eval_mode_copy(model)
    eval_path = str(tmp_path / "evalmode.onnx")
    onnx.save(evalm, eval_path)
    types = out_types(model)
    for k, (ins, train_out) in enumerate(manifest_samples(entry)):
        got = bnfold_run(bnfold, path, ins, tmp_path)
        feeds = {n: np.asarray(a, dtype=np.float64) for n, a in ins.items()}
        want, _ = gen.run_model(evalm, feeds)
        ref = ortutil.run_ort(eval_path, ort_feeds(evalm, ins)) if entry["ort"] else None
        trained_differs = False
        for name, dt in types.items():
            assert_close(got[name], want[name], dt, "%s sample %d output %r vs eval-mode numpy"
                         % (fixture, k, name))
            if ref is not None:
                assert_close(got[name], ref[name], dt, "%s sample %d output %r vs eval-mode "
                             "onnxruntime" % (fixture, k, name))
            rtol, atol = TOL[dt]
            trained_differs |= not np.allclose(got[name], train_out[name], rtol=rtol, atol=atol)
        assert trained_differs, "%s: bnfold's output equals the batch-statistics output" % fixture


# ---------------------------------------------------------------------------
# torch exports

@pytest.mark.parametrize("name", [n for n in TORCH_MODELS if n != "training_mode"])
def test_run_torch_export(bnfold, ort, tmp_path, name):
    path = os.path.join(TORCH_DIR, name + ".onnx")
    model = onnx.load(path)
    types = out_types(model)
    for k, (ins, want) in enumerate(torch_samples(name)):
        got = bnfold_run(bnfold, path, ins, tmp_path)
        ref = ortutil.run_ort(path, ort_feeds(model, ins))
        assert set(got) == set(want) == set(ref)
        for out, dt in types.items():
            assert_close(got[out], ref[out], dt, "%s sample %d %r vs onnxruntime" % (name, k, out))
            assert_close(got[out], want[out], dt, "%s sample %d %r vs torch" % (name, k, out))


def test_run_torch_training_mode_export(bnfold, ort, tmp_path):
    # training_mode.onnx asks for batch statistics (and torch's stored outputs
    # are train-mode).  bnfold evaluates it in eval mode with the running
    # statistics stored in this very file, which differ from those of
    # training_mode_evaltwin.onnx (the export moved them once more), so the
    # reference is this graph with training_mode=0, run by onnxruntime.
    path = os.path.join(TORCH_DIR, "training_mode.onnx")
    model = onnx.load(path)
    evalm = eval_mode_copy(model)
    eval_path = str(tmp_path / "evalmode.onnx")
    onnx.save(evalm, eval_path)
    for k, (ins, train_out) in enumerate(torch_samples("training_mode")):
        got = bnfold_run(bnfold, path, ins, tmp_path)
        ref = ortutil.run_ort(eval_path, ort_feeds(evalm, ins))
        assert_close(got["output"], ref["output"], onnx.TensorProto.FLOAT,
                     "training_mode sample %d vs eval-mode onnxruntime" % k)
        assert not np.allclose(got["output"], train_out["output"], rtol=1e-4, atol=1e-5), \
            "bnfold's output equals torch's batch-statistics output"


@pytest.mark.parametrize("name", [n for n in TORCH_MODELS if n != "training_mode"])
def test_folded_torch_export_matches_original_under_ort(bnfold, ort, tmp_path, name):
    path = os.path.join(TORCH_DIR, name + ".onnx")
    folded = str(tmp_path / "folded.onnx")
    proc = run(bnfold, [path, "-o", folded])
    assert proc.returncode == 0, describe(proc)
    model = onnx.load(path)
    for k, (ins, want) in enumerate(torch_samples(name)):
        a = ortutil.run_ort(path, ort_feeds(model, ins))
        b = ortutil.run_ort(folded, ort_feeds(model, ins))
        assert list(a) == list(b)
        for out in a:
            assert_close(b[out], a[out], onnx.TensorProto.FLOAT,
                         "%s sample %d %r: folded vs original under onnxruntime"
                         % (name, k, out))
            assert_close(b[out], want[out], onnx.TensorProto.FLOAT,
                         "%s sample %d %r: folded under onnxruntime vs torch" % (name, k, out))


def test_folded_torch_training_mode_export_is_unchanged(bnfold, tmp_path):
    # A training-mode BatchNormalization is never folded, so the folded
    # "original vs folded" comparison reduces to byte identity.
    path = os.path.join(TORCH_DIR, "training_mode.onnx")
    out = str(tmp_path / "folded.onnx")
    proc = run(bnfold, [path, "-o", out])
    assert proc.returncode == 0, describe(proc)
    with open(path, "rb") as f1, open(out, "rb") as f2:
        assert f1.read() == f2.read()


def test_run_pb_and_npy_inputs_agree(bnfold, tmp_path):
    # The same values given as .npy and as TensorProto .pb give the same result.
    path = os.path.join(TORCH_DIR, "resnet_tiny.onnx")
    ins, want = torch_samples("resnet_tiny")[0]
    a = bnfold_run(bnfold, path, ins, tmp_path, fmt="npy")
    b = bnfold_run(bnfold, path, ins, tmp_path, fmt="pb")
    np.testing.assert_array_equal(a["output"], b["output"])
    assert_close(b["output"], want["output"], onnx.TensorProto.FLOAT, "resnet_tiny via .pb")
