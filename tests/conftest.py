"""Shared helpers of the bnfold pytest suite: where the binary is, how to run
it, the fixture manifest, parsers for its stderr lines, and model inspection
(constants, producers, ulp distances) used by test_fold.py and test_cli.py.

The binary is $BNFOLD if set, else <repo>/$BNFOLD_BUILD/bnfold with
BNFOLD_BUILD defaulting to "build" (the asan run sets build/asan).
"""

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)
FIXTURES = os.path.join(TESTS_DIR, "fixtures")
BAD_DIR = os.path.join(FIXTURES, "bad")

sys.path.insert(0, FIXTURES)
sys.path.insert(0, TESTS_DIR)
import gen_fixtures as gen  # noqa: E402  (tensor decoding and graph walking)

# Generous because of the sanitizer build on a slow machine.
RUN_TIMEOUT = 120

REASONS = set(gen.REASONS)
KINDS = ("conv", "gemm", "matmul", "convtranspose")

# A BN inside a subgraph may carry a location suffix such as
# " [in if/then_branch]" on its folded line (not part of the written contract).
RE_FOLDED = re.compile(
    r"^bnfold: BatchNormalization '(?P<bn>.*)': folded into (?P<op>\S+) '(?P<node>.*)' "
    r"\((?P<kind>%s)\)(?: \[in [^]]*\])?$" % "|".join(KINDS))
RE_KEPT = re.compile(
    r"^bnfold: BatchNormalization '(?P<bn>.*)': kept \((?P<reason>[a-z-]+)\): (?P<why>.+)$")
# The contract prints "(conv A, gemm B, matmul C, convtranspose D)"; kinds
# with a count of 0 may be left out (read as 0), but the order stays that of
# KINDS.
# Then ", lowered L to Mul + Add" (--lower-bn) and " and A affine nodes"
# (Mul/Add/Sub/Div by constants folded), each only when not 0.
RE_SUMMARY = re.compile(
    r"^bnfold: folded (?P<folded>\d+) of (?P<total>\d+) BatchNormalization nodes"
    r"(?: \((?P<kinds>(?:%s) \d+(?:, (?:%s) \d+)*)\))?"
    r"(?:, lowered (?P<lowered>\d+) to Mul \+ Add)?(?: and (?P<affine>\d+) affine nodes?)?; "
    r"(?P<nodes>\d+) nodes and (?P<inits>\d+) initializers removed; (?P<before>.+) -> "
    r"(?P<after>.+)$" % ("|".join(KINDS), "|".join(KINDS)))


def bnfold_path():
    explicit = os.environ.get("BNFOLD")
    if explicit:
        return explicit
    build = os.environ.get("BNFOLD_BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(REPO, build)
    return os.path.join(build, "bnfold")


@pytest.fixture(scope="session")
def bnfold():
    """Path of the binary under test; a missing binary is a failure, not a skip."""
    path = bnfold_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("bnfold binary not found at %s (build it, or set BNFOLD / BNFOLD_BUILD)"
                    % path, pytrace=False)
    return path


def run(bnfold_bin, args, stdin=None, cwd=None):
    """Run bnfold; stdout stays bytes (it may be a model), stderr is text."""
    proc = subprocess.run([bnfold_bin] + list(args), input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=RUN_TIMEOUT, cwd=cwd)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def describe(proc):
    return "exit %d, stderr:\n%s" % (proc.returncode, proc.stderr)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_manifest():
    with open(os.path.join(FIXTURES, "manifest.json")) as f:
        return json.load(f)


MANIFEST = load_manifest()
GOOD = MANIFEST["fixtures"]
BAD = MANIFEST["bad"]


def good_ids():
    return [e["file"] for e in GOOD]


# ---------------------------------------------------------------------------
# stderr parsing

def parse_verbose(stderr):
    """{BN display name: [("folded", op, node, kind) | ("kept", reason, why)]}."""
    seen = {}
    for line in stderr.splitlines():
        m = RE_FOLDED.match(line)
        if m:
            seen.setdefault(m["bn"], []).append(("folded", m["op"], m["node"], m["kind"]))
            continue
        m = RE_KEPT.match(line)
        if m:
            seen.setdefault(m["bn"], []).append(("kept", m["reason"], m["why"]))
    return seen


def parse_summary(stderr):
    lines = [m for m in map(RE_SUMMARY.match, stderr.splitlines()) if m]
    assert len(lines) == 1, "expected exactly one summary line in stderr:\n" + stderr
    m = lines[0]
    out = {k: (int(v) if v.isdigit() else v) for k, v in m.groupdict().items()
           if k != "kinds" and v is not None}
    out.setdefault("lowered", 0)
    out.setdefault("affine", 0)
    pairs = [p.split(" ") for p in (m["kinds"] or "").split(", ") if p]
    names = [k for k, _ in pairs]
    assert names == [k for k in KINDS if k in names], "kinds out of order: " + lines[0].string
    for kind in KINDS:
        out[kind] = dict((k, int(v)) for k, v in pairs).get(kind, 0)
    assert sum(out[k] for k in KINDS) == out["folded"], "kind counts do not add up: " + \
        lines[0].string
    return out


# ---------------------------------------------------------------------------
# model inspection

def load_model(path_or_bytes):
    if isinstance(path_or_bytes, bytes):
        return onnx.ModelProto.FromString(path_or_bytes)
    with open(path_or_bytes, "rb") as f:
        return onnx.ModelProto.FromString(f.read())


def all_nodes(model):
    for g, _ in gen.all_graphs(model.graph):
        for n in g.node:
            yield g, n


def bn_names(model):
    return [gen.bn_display_name(n) for _, n in all_nodes(model)
            if n.op_type == "BatchNormalization"]


def count_nodes(model):
    """Nodes in all graphs, Constant nodes not counted (manifest convention)."""
    return gen.count_nodes(model)


def find_producer(model, name):
    """(graph, node) producing tensor name anywhere in the model, or (None, None)."""
    for g, n in all_nodes(model):
        if name in n.output:
            return g, n
    return None, None


def const_of(model, graph, name):
    """(float64 values, element type) of a constant seen from graph."""
    return gen.resolve_const(gen.graph_chain(model, graph), name)


def const_tensor_type(model, graph, name):
    return const_of(model, graph, name)[1]


def dead_constants(model):
    """Initializers, Constant and Identity outputs that nothing reads."""
    used = set()
    for g, _ in gen.all_graphs(model.graph):
        used.update(o.name for o in g.output)
        for n in g.node:
            used.update(n.input)
    dead = []
    for g, _ in gen.all_graphs(model.graph):
        graph_inputs = {i.name for i in g.input}
        dead += ["initializer " + t.name for t in g.initializer
                 if t.name not in used and t.name not in graph_inputs]
        for n in g.node:
            if n.op_type in ("Constant", "Identity") and not any(o in used for o in n.output):
                dead.append("%s node %s" % (n.op_type, n.name or n.output[0]))
    return dead


def ordered_bits(values, dt):
    """Sign-magnitude float bit patterns mapped to ordered Python ints."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if dt == gen.FLOAT:
        bits, width = v.astype(np.float32).view(np.uint32), 32
    elif dt == gen.DOUBLE:
        bits, width = v.view(np.uint64), 64
    elif dt == gen.FLOAT16:
        bits, width = v.astype(np.float16).view(np.uint16), 16
    elif dt == gen.BFLOAT16:
        bits, width = gen.bf16_bits(v), 16
    else:
        raise ValueError("element type %d" % dt)
    sign = 1 << (width - 1)
    out = []
    for b in bits.tolist():
        out.append(-(b & (sign - 1)) if b & sign else b)
    return out


def max_ulp(actual, expected, dt):
    a, e = ordered_bits(actual, dt), ordered_bits(expected, dt)
    assert len(a) == len(e)
    return max((abs(x - y) for x, y in zip(a, e)), default=0)


def assert_close_ulp(actual, expected, dt, what, ulps=1):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert np.all(np.isfinite(actual)), "%s: non-finite values %s" % (what, actual)
    shape = np.broadcast_shapes(actual.shape, expected.shape)
    a = np.broadcast_to(actual, shape)
    e = np.broadcast_to(expected, shape)
    # The broadcast shape must not be larger than what each side can explain.
    assert a.size == max(actual.size, expected.size), \
        "%s: shape %s vs expected %s" % (what, actual.shape, expected.shape)
    worst = max_ulp(a, e, dt)
    assert worst <= ulps, "%s: %d ulp off (allowed %d)\nactual   %s\nexpected %s" % (
        what, worst, ulps, actual.reshape(-1)[:8], expected.reshape(-1)[:8])
