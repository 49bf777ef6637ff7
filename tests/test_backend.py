"""ONNX's backend node tests, run through `bnfold --run`.

Every directory under the libonnx-testdata node folder is one pytest case.
A directory whose model uses an operator bnfold does not implement is
skipped with that operator's name; one that needs a feature bnfold leaves
out on purpose is listed with its reason in tests/backend_skips.txt; every
other one must reproduce each test_data_set_*'s outputs.  The passed, failed
and skipped lists are written to build/backend-report.txt (or to
$BNFOLD_BUILD/backend-report.txt) and summarised at the end of the run.
"""

import glob
import os
import subprocess
import tempfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_DIR = os.environ.get("BNFOLD_NODE_TESTS", "/usr/share/libonnx-testdata/data/node")
SKIPS_FILE = os.path.join(REPO, "tests", "backend_skips.txt")
BUILD_DIR = os.path.join(REPO, os.environ.get("BNFOLD_BUILD", "build"))
BNFOLD = os.environ.get("BNFOLD", os.path.join(BUILD_DIR, "bnfold"))
REPORT = os.path.join(BUILD_DIR, "backend-report.txt")
TIMEOUT_S = 120

IMPLEMENTED = frozenset("""
    Conv ConvTranspose BatchNormalization InstanceNormalization LayerNormalization
    Gemm MatMul Add Sub Mul Div Pow Sqrt Exp Log Abs Neg Reciprocal Erf Relu
    LeakyRelu PRelu Elu Selu Clip Sigmoid HardSigmoid HardSwish Tanh Softplus Mish
    Softmax LogSoftmax MaxPool AveragePool GlobalAveragePool GlobalMaxPool Flatten
    Reshape Transpose Concat Split Slice Squeeze Unsqueeze Shape Gather Constant
    ConstantOfShape Identity Dropout Pad ReduceMean ReduceSum ReduceMax Resize
    Upsample Cast Expand Sum Max Min Equal Where Range Tile
""".split())

# (rtol, atol) by output dtype; the 16-bit floats carry 11 and 8 significant
# bits, so their results agree only to their own rounding.
FLOAT_TOL = {
    TensorProto.FLOAT: (1e-4, 1e-5),
    TensorProto.DOUBLE: (1e-4, 1e-5),
    TensorProto.FLOAT16: (2e-3, 1e-3),
    TensorProto.BFLOAT16: (1.6e-2, 1e-2),
}


def _read_skips():
    skips = {}
    with open(SKIPS_FILE, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, reason = line.partition(" ")
            assert reason.strip(), "backend_skips.txt: no reason given for " + name
            skips[name] = reason.strip()
    return skips


def _op_names(graph):
    """Operator names of a graph and of the subgraphs in its attributes."""
    for node in graph.node:
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        yield domain + "::" + node.op_type if domain else node.op_type
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _op_names(sub)


def _missing_operator(model_path):
    """The first operator of the model bnfold lacks, or None."""
    model = onnx.load(model_path, load_external_data=False)
    for name in _op_names(model.graph):
        if name not in IMPLEMENTED:
            return name
    return None


DIRS = sorted(d for d in os.listdir(NODE_DIR)
              if os.path.isfile(os.path.join(NODE_DIR, d, "model.onnx"))) \
    if os.path.isdir(NODE_DIR) else []
SKIPS = _read_skips()
RESULTS = {"passed": [], "failed": [], "skipped": []}


class _Report:
    """A plugin registered while this module runs: writes the report file
    and prints the lists in pytest's terminal summary."""

    @staticmethod
    def pytest_terminal_summary(terminalreporter):
        lines = []
        for kind in ("passed", "failed", "skipped"):
            entries = sorted(RESULTS[kind])
            lines.append("%s (%d):" % (kind, len(entries)))
            lines.extend("  " + e for e in entries)
        summary = "backend node tests: %d passed, %d failed, %d skipped (report: %s)" % (
            len(RESULTS["passed"]), len(RESULTS["failed"]), len(RESULTS["skipped"]), REPORT)
        os.makedirs(os.path.dirname(REPORT), exist_ok=True)
        with open(REPORT, "w", encoding="utf-8") as f:
            f.write("\n".join(lines + [summary]) + "\n")
        terminalreporter.section("backend node tests")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(summary)


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("bnfold-backend-report"):
        manager.register(_Report(), "bnfold-backend-report")


def _load_tensor(path):
    proto = onnx.load_tensor(path)
    return proto.data_type, numpy_helper.to_array(proto)


def _compare(name, expected_path, actual_path):
    """None when the output matches, else what differs."""
    if not os.path.isfile(actual_path):
        return "output '%s' was not written" % name
    want_type, want = _load_tensor(expected_path)
    got_type, got = _load_tensor(actual_path)
    if want_type != got_type:
        return "output '%s' has dtype %s, expected %s" % (
            name, TensorProto.DataType.Name(got_type), TensorProto.DataType.Name(want_type))
    if want.shape != got.shape:
        return "output '%s' has shape %s, expected %s" % (name, got.shape, want.shape)
    if want_type not in FLOAT_TOL:
        bad = want != got
    else:
        rtol, atol = FLOAT_TOL[want_type]
        w = want.astype(np.float64)
        g = got.astype(np.float64)
        bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    if not np.any(bad):
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return "output '%s': %d of %d values differ, first at %s: got %r, expected %r" % (
        name, int(np.count_nonzero(bad)), want.size, first, got[first], want[first])


def _run_case(model_path, model, case_dir, out_dir):
    """Run one test_data_set; None on success, else the failure."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    cmd = [BNFOLD, "--run", model_path, "--output-dir", out_dir]
    n_files = len(glob.glob(os.path.join(case_dir, "input_*.pb")))
    for k in range(n_files):
        cmd += ["--input", "%s=%s" % (inputs[k], os.path.join(case_dir, "input_%d.pb" % k))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "timed out after %d s" % TIMEOUT_S
    if proc.returncode != 0:
        return "exit %d: %s" % (proc.returncode, proc.stderr.strip()[-600:])
    for k, out in enumerate(model.graph.output):
        problem = _compare(out.name, os.path.join(case_dir, "output_%d.pb" % k),
                           os.path.join(out_dir, out.name + ".pb"))
        if problem:
            return problem
    return None


def _check_dir(name):
    path = os.path.join(NODE_DIR, name)
    model_path = os.path.join(path, "model.onnx")
    missing = _missing_operator(model_path)
    if missing:
        return "skipped", "operator %s not implemented" % missing
    if name in SKIPS:
        return "skipped", SKIPS[name]
    if not os.access(BNFOLD, os.X_OK):
        return "failed", "no executable bnfold at %s" % BNFOLD
    model = onnx.load(model_path)
    cases = sorted(glob.glob(os.path.join(path, "test_data_set_*")))
    if not cases:
        return "failed", "no test_data_set_* directory"
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="bnfold-backend-") as out_dir:
            problem = _run_case(model_path, model, case, out_dir)
        if problem:
            return "failed", "%s: %s" % (os.path.basename(case), problem)
    return "passed", None


def test_skip_list_is_current():
    """Every listed directory exists and uses only implemented operators, so
    that a stale or redundant entry cannot hide a directory."""
    if not os.path.isdir(NODE_DIR):
        pytest.skip("no backend test data at " + NODE_DIR)
    for name in SKIPS:
        model_path = os.path.join(NODE_DIR, name, "model.onnx")
        assert os.path.isfile(model_path), "backend_skips.txt: no test directory " + name
        assert _missing_operator(model_path) is None, \
            "backend_skips.txt: %s already skipped for its operator" % name


@pytest.mark.parametrize("name", DIRS)
def test_node(name):
    outcome, reason = _check_dir(name)
    RESULTS[outcome].append(name + (" - " + reason if reason else ""))
    if outcome == "skipped":
        pytest.skip(reason)
    if outcome == "failed":
        pytest.fail(reason, pytrace=False)
