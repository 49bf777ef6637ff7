"""ONNX's backend node tests, run through `bnfold --run`.

Every directory under the libonnx-testdata node folder is one pytest case
and must reproduce each test_data_set_*'s outputs, unless
tests/backend_exclusions.txt lists it with its kind and reason. What bnfold
implements is what `bnfold --list-ops` prints, the registry's own tables:
a directory whose model needs an operator (at its opset) missing from that
list and is not listed in the exclusions file fails, so the file is the one
place where a skip is declared.  The passed, failed and skipped lists, and
the pass rate over the tests outside the excluded kinds, are written to
build/backend-report.txt (or $BNFOLD_BUILD/backend-report.txt) and
summarised at the end of the run.
"""

import glob
import os
import re
import subprocess
import tempfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_DIR = os.environ.get("BNFOLD_NODE_TESTS", "/usr/share/libonnx-testdata/data/node")
EXCLUSIONS_FILE = os.path.join(REPO, "tests", "backend_exclusions.txt")
BUILD_DIR = os.path.join(REPO, os.environ.get("BNFOLD_BUILD", "build"))
BNFOLD = os.environ.get("BNFOLD", os.path.join(BUILD_DIR, "bnfold"))
REPORT = os.path.join(BUILD_DIR, "backend-report.txt")
TIMEOUT_S = 120

# Kinds of test the issue leaves out of the target (they need a feature an
# eval-mode checker of deployed models does not have), and the kinds that
# count against it.
EXCLUDED_KINDS = frozenset(
    "training random sequence optional string float8 int4 expanded".split())
COUNTED_KINDS = frozenset(["unimplemented", "other"])
TARGET_PASS_RATE = 0.90


def _read_exclusions():
    """{directory: (kind, reason)} from the exclusions file."""
    entries = {}
    with open(EXCLUSIONS_FILE, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(None, 2)
            where = "backend_exclusions.txt:%d: " % number
            assert len(fields) == 3, where + "want '<directory> <kind> <reason>'"
            name, kind, reason = fields
            assert kind in EXCLUDED_KINDS | COUNTED_KINDS, where + "unknown kind " + kind
            assert name not in entries, where + name + " is listed twice"
            entries[name] = (kind, reason)
    return entries


def _list_ops():
    """{operator: [(first, last)]} from bnfold --list-ops (last None: open)."""
    if not os.access(BNFOLD, os.X_OK):
        return None
    proc = subprocess.run([BNFOLD, "--list-ops"], capture_output=True, text=True, check=True)
    ops = {}
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"(\w+) (\d+)-(\d*)", line)
        assert m, "bnfold --list-ops printed %r" % line
        ops.setdefault(m.group(1), []).append(
            (int(m.group(2)), int(m.group(3)) if m.group(3) else None))
    return ops


def _op_names(graph):
    """Operator names of a graph and of the subgraphs in its attributes."""
    for node in graph.node:
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        yield domain + "::" + node.op_type if domain else node.op_type
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _op_names(sub)


def _opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def _missing_operators(model_path):
    """The operators of the model that bnfold --list-ops does not cover at
    the model's opset, sorted."""
    model = onnx.load(model_path, load_external_data=False)
    opset = _opset(model)
    missing = set()
    for name in _op_names(model.graph):
        ranges = IMPLEMENTED.get(name, [])
        if not any(first <= opset and (last is None or opset <= last)
                   for first, last in ranges):
            missing.add(name)
    return sorted(missing)


DIRS = sorted(d for d in os.listdir(NODE_DIR)
              if os.path.isfile(os.path.join(NODE_DIR, d, "model.onnx"))) \
    if os.path.isdir(NODE_DIR) else []
EXCLUSIONS = _read_exclusions()
IMPLEMENTED = _list_ops() or {}
RESULTS = {"passed": [], "failed": [], "skipped": []}


def _counted(dirs):
    """The tests outside the excluded kinds: not an _expanded function body,
    not listed with an excluded kind."""
    return [d for d in dirs if not d.endswith("_expanded")
            and EXCLUSIONS.get(d, ("",))[0] not in EXCLUDED_KINDS]


def _pass_rate_line():
    """The issue's measure: passes among the tests outside the excluded kinds."""
    counted = _counted(DIRS)
    passed = {e.split(" ")[0] for e in RESULTS["passed"]}
    n_pass = sum(1 for d in counted if d in passed)
    return "outside the excluded kinds: %d of %d pass (%.1f%%)" % (
        n_pass, len(counted), 100.0 * n_pass / max(1, len(counted)))


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
        summary = "backend node tests: %d passed, %d failed, %d skipped; %s (report: %s)" % (
            len(RESULTS["passed"]), len(RESULTS["failed"]), len(RESULTS["skipped"]),
            _pass_rate_line(), REPORT)
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


# (rtol, atol) by output dtype; the 16-bit floats carry 11 and 8 significant
# bits, so their results agree only to their own rounding.
FLOAT_TOL = {
    TensorProto.FLOAT: (1e-4, 1e-5),
    TensorProto.DOUBLE: (1e-4, 1e-5),
    TensorProto.FLOAT16: (2e-3, 1e-3),
    TensorProto.BFLOAT16: (1.6e-2, 1e-2),
}

# Tests whose expected outputs are written out by hand to a few digits in
# ONNX's test generator, so they agree only to those digits: compared at
# the rtol of ONNX's own backend test runner (1e-3) instead.
ROUNDED_EXPECTATIONS = frozenset([
    "test_roialign_aligned_false",  # 4 significant digits
    "test_roialign_aligned_true",
    "test_gridsample_bicubic",  # 4 decimals
    # The windows' expectations come from float32 angles: asymmetric, off
    # by up to 6e-4 relative near the ends.
    "test_blackmanwindow", "test_blackmanwindow_symmetric",
    "test_hammingwindow", "test_hammingwindow_symmetric",
    "test_hannwindow", "test_hannwindow_symmetric",
    "test_blackmanwindow_expanded", "test_blackmanwindow_symmetric_expanded",
    "test_hammingwindow_expanded", "test_hammingwindow_symmetric_expanded",
    "test_hannwindow_expanded", "test_hannwindow_symmetric_expanded",
])


def _load_tensor(path):
    proto = onnx.load_tensor(path)
    return proto.data_type, numpy_helper.to_array(proto)


def _compare(name, expected_path, actual_path, rounded=False):
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
        rtol = max(rtol, 1e-3) if rounded else rtol
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
                           os.path.join(out_dir, out.name + ".pb"),
                           rounded=os.path.basename(os.path.dirname(model_path))
                           in ROUNDED_EXPECTATIONS)
        if problem:
            return problem
    return None


def _check_dir(name):
    path = os.path.join(NODE_DIR, name)
    model_path = os.path.join(path, "model.onnx")
    if name in EXCLUSIONS:
        kind, reason = EXCLUSIONS[name]
        return "skipped", "%s: %s" % (kind, reason)
    if not os.access(BNFOLD, os.X_OK):
        return "failed", "no executable bnfold at %s" % BNFOLD
    missing = _missing_operators(model_path)
    if missing:
        return "failed", ("needs %s, which bnfold --list-ops does not list: implement it "
                          "or list the test in backend_exclusions.txt" % ", ".join(missing))
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


def test_exclusions_are_current():
    """Every listed directory exists, and one listed as unimplemented does
    need an operator bnfold --list-ops leaves out, so that a stale entry
    cannot hide a test that would now run."""
    if not os.path.isdir(NODE_DIR):
        pytest.skip("no backend test data at " + NODE_DIR)
    assert IMPLEMENTED, "bnfold --list-ops listed nothing (is %s built?)" % BNFOLD
    for name, (kind, reason) in sorted(EXCLUSIONS.items()):
        model_path = os.path.join(NODE_DIR, name, "model.onnx")
        assert os.path.isfile(model_path), "backend_exclusions.txt: no test directory " + name
        if kind == "unimplemented":
            missing = _missing_operators(model_path)
            assert missing, "backend_exclusions.txt: %s runs now (%s)" % (name, reason)
            for op in missing:
                assert op in reason, "backend_exclusions.txt: %s also needs %s" % (name, op)
        if kind == "expanded":
            assert name.endswith("_expanded"), "backend_exclusions.txt: %s is no _expanded " \
                "function body" % name


def test_pass_rate_target():
    """The tests outside the excluded kinds that are listed in the exclusions
    file (unimplemented or other) stay below 10%: every other one runs, and
    test_node fails unless it passes."""
    if not os.path.isdir(NODE_DIR):
        pytest.skip("no backend test data at " + NODE_DIR)
    counted = _counted(DIRS)
    listed = [d for d in counted if d in EXCLUSIONS]
    rate = 1.0 - len(listed) / max(1, len(counted))
    assert rate >= TARGET_PASS_RATE, "%d of the %d counted tests are excluded: %.1f%% can " \
        "pass, the target is %.0f%%" % (len(listed), len(counted), 100 * rate,
                                        100 * TARGET_PASS_RATE)


@pytest.mark.parametrize("name", DIRS)
def test_node(name):
    outcome, reason = _check_dir(name)
    RESULTS[outcome].append(name + (" - " + reason if reason else ""))
    if outcome == "skipped":
        pytest.skip(reason)
    if outcome == "failed":
        pytest.fail(reason, pytrace=False)
