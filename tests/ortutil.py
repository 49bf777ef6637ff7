"""Helpers for running ONNX models in onnxruntime from the pytest suite.

onnxruntime has no Python wheel on this platform setup (no PyPI), so the
reference runtime is the npm package onnxruntime-node driven by
tests/ort/run.js.  This module hides that behind two calls:

    ensure_ort()                      -> True once the runner is usable
    run_ort(model_path, {name: arr})  -> {output name: ndarray}, graph order

Set BNFOLD_NODE to use a node binary other than the first one on PATH.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ORT_DIR = os.path.join(TESTS_DIR, "ort")
RUNNER = os.path.join(ORT_DIR, "run.js")
INSTALL_SCRIPT = os.path.join(ORT_DIR, "install.sh")
_ORT_PKG = os.path.join(ORT_DIR, "node_modules", "onnxruntime-node", "package.json")

# Generous: loading the runtime takes well under a second, but CI boxes are slow.
RUN_TIMEOUT = 300


class OrtError(RuntimeError):
    """onnxruntime (or the runner around it) rejected a model or its inputs."""


def node_binary():
    """Path of the node executable to use, or None if there is none."""
    override = os.environ.get("BNFOLD_NODE")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("node")


def ort_available():
    """True when node exists and onnxruntime-node is installed in tests/ort."""
    return node_binary() is not None and os.path.isfile(_ORT_PKG)


def ensure_ort():
    """Install onnxruntime-node via tests/ort/install.sh if it is missing.

    Returns whether the runner is usable afterwards.  Raises OrtError when
    node is present but the installation itself fails, since that is a real
    problem rather than a machine without node.
    """
    if ort_available():
        return True
    if node_binary() is None or shutil.which("npm") is None:
        return False
    # Parallel test workers must not run two npm installs in one directory.
    tag = hashlib.sha1(ORT_DIR.encode()).hexdigest()[:12]
    lock_path = os.path.join(tempfile.gettempdir(), "bnfold-ort-install-%s.lock" % tag)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ort_available():
            proc = subprocess.run(["sh", INSTALL_SCRIPT], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise OrtError("installing onnxruntime-node failed:\n"
                               + proc.stdout + proc.stderr)
    return ort_available()


def _as_npy_ready(arr):
    """Little-endian, C-contiguous copy (or the array itself if already so)."""
    a = np.asarray(arr)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    # np.ascontiguousarray would turn a 0-d array into shape (1,).
    return np.asarray(a, order="C")


def run_ort(model_path, inputs):
    """Run model_path once in onnxruntime (CPU, no graph optimisations).

    inputs maps graph input names to numpy arrays; their dtypes are passed
    through unchanged (float32/64/16, int64, int32, bool, uint8, ...).
    Returns a dict from output name to ndarray in the model's output order.
    """
    node = node_binary()
    if node is None:
        raise OrtError("node is not installed")
    if not os.path.isfile(_ORT_PKG):
        raise OrtError("onnxruntime-node is not installed; run sh tests/ort/install.sh")
    with tempfile.TemporaryDirectory(prefix="bnfold-ort-") as tmp:
        argv = [node, RUNNER, os.path.abspath(model_path), os.path.join(tmp, "out")]
        # Files are numbered rather than named after inputs, whose names may
        # contain characters that are awkward in paths.
        for i, (name, arr) in enumerate(inputs.items()):
            path = os.path.join(tmp, "in%d.npy" % i)
            np.save(path, _as_npy_ready(arr), allow_pickle=False)
            argv.append("%s=%s" % (name, path))
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise OrtError("onnxruntime timed out on %s" % model_path) from None
        if proc.returncode != 0:
            msg = proc.stderr.strip() or ("runner exited with status %d" % proc.returncode)
            raise OrtError(msg)
        outdir = os.path.join(tmp, "out")
        with open(os.path.join(outdir, "outputs.json")) as f:
            names = json.load(f)
        return {name: np.load(os.path.join(outdir, "%d.npy" % k), allow_pickle=False)
                for k, name in enumerate(names)}
