"""Sanity checks for the PyTorch-exported fixtures in tests/fixtures/torch.

These validate the fixtures themselves (valid ONNX, BatchNormalization still
present, onnxruntime agrees with the outputs torch stored next to each
model); the bnfold-specific tests live elsewhere.
"""

import os
import sys

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ortutil  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "torch")
RTOL, ATOL = 1e-4, 1e-5

# name -> (opset, op type feeding the first BatchNormalization)
MODELS = {
    "resnet_tiny": (15, "Conv"),
    "resnet_tiny_op9": (9, "Conv"),
    "mobilenet_block": (15, "Conv"),
    "linear_bn1d": (15, "Gemm"),
    "linear_nobias_bn1d": (15, "MatMul"),
    "conv1d_bn": (15, "Conv"),
    "conv3d_bn": (15, "Conv"),
    "training_mode": (15, "Conv"),
    "training_mode_evaltwin": (15, "Conv"),
    "identity_dedup": (15, "Conv"),
}


def _path(name, ext):
    return os.path.join(FIXTURES, name + ext)


def _bn_nodes(model):
    return [n for n in model.graph.node if n.op_type == "BatchNormalization"]


def _training_mode(node):
    for a in node.attribute:
        if a.name == "training_mode":
            return onnx.helper.get_attribute_value(a)
    return 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixture_is_valid_onnx(name):
    model = onnx.load(_path(name, ".onnx"))
    onnx.checker.check_model(model, full_check=True)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    assert opset == [MODELS[name][0]]

    bns = _bn_nodes(model)
    assert bns, "exporter folded every BatchNormalization away"
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    assert producers.get(bns[0].input[0]) == MODELS[name][1]

    want_mode = 1 if name == "training_mode" else 0
    assert all(_training_mode(n) == want_mode for n in bns)
    if name == "training_mode":
        # BN-15 in training mode also emits the updated running statistics.
        assert all(len(n.output) == 3 for n in bns)
    else:
        assert all(len(n.output) == 1 for n in bns)


def test_identity_dedup_really_uses_identity():
    model = onnx.load(_path("identity_dedup", ".onnx"))
    inits = {i.name for i in model.graph.initializer}
    via_identity = {out for n in model.graph.node if n.op_type == "Identity"
                    for out in n.output}
    params = [p for n in _bn_nodes(model) for p in n.input[1:]]
    assert any(p in via_identity for p in params)
    assert all(p in inits or p in via_identity for p in params)


def test_op9_lists_initializers_as_inputs():
    model = onnx.load(_path("resnet_tiny_op9", ".onnx"))
    inputs = {i.name for i in model.graph.input}
    assert {i.name for i in model.graph.initializer} <= inputs


@pytest.fixture(scope="module")
def ort():
    if not ortutil.ensure_ort():
        pytest.skip("node/npm not available, onnxruntime harness cannot run")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ort_matches_torch(ort, name):
    ref = np.load(_path(name, ".npz"))
    assert sorted(ref.files) == ["input_0/input", "input_1/input",
                                 "output_0/output", "output_1/output"]
    for k in range(2):
        x = ref["input_%d/input" % k]
        want = ref["output_%d/output" % k]
        assert x.dtype == np.float32 and want.dtype == np.float32
        got = ortutil.run_ort(_path(name, ".onnx"), {"input": x})
        assert list(got) == ["output"]
        assert got["output"].shape == want.shape
        np.testing.assert_allclose(got["output"], want, rtol=RTOL, atol=ATOL)


def test_training_export_moved_running_stats():
    # The TRAINING export traced the net in train mode, so its running
    # statistics differ from the twin copied before the export; the learned
    # parameters do not.
    from onnx import numpy_helper

    def inits(name):
        m = onnx.load(_path(name, ".onnx"))
        return {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}

    trained, twin = inits("training_mode"), inits("training_mode_evaltwin")
    assert trained.keys() == twin.keys()
    for key in trained:
        same = np.array_equal(trained[key], twin[key])
        assert same != key.endswith(("running_mean", "running_var")), key
