"""Writes appear whole or not at all: a full device, a file size limit hit
in the middle of the write, a full file system (a 64 KiB tmpfs, for the
model and for its external data file) and a closed pipe each give exit 2
with the reason, leave no output or temporary file, and never touch the
input."""

import errno
import io
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import FIXTURES, RUN_TIMEOUT, sha256

FOLDS = os.path.join(FIXTURES, "torch", "resnet_tiny.onnx")     # 26 kB, folds
NO_BN = "no_bn"                                                 # made below, written back as is


def make_no_bn(path):
    """A 16 kB model with nothing to fold (Add of a constant)."""
    c = numpy_helper.from_array(np.arange(4000, dtype=np.float32), "c")
    g = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4000])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4000])],
                          initializer=[c])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def run_to(bnfold, args, stdout, pre=None):
    cmd = [bnfold] + args
    if pre:
        cmd = ["sh", "-c", pre + '; exec "$0" "$@"'] + cmd
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def copy_input(tmp_path, src):
    dst = tmp_path / (os.path.basename(src) + ".onnx")
    if src == NO_BN:
        make_no_bn(dst)
    else:
        shutil.copyfile(src, dst)
    assert os.path.getsize(dst) > 8 * 512
    return str(dst), sha256(dst)


@pytest.mark.parametrize("src", [FOLDS, NO_BN], ids=["folded", "unchanged"])
def test_stdout_to_dev_full(bnfold, tmp_path, src):
    path, digest = copy_input(tmp_path, src)
    with open("/dev/full", "wb") as full:
        code, err = run_to(bnfold, [path, "-o", "-", "--no-verify"], full)
    assert code == 2, err
    assert "cannot write to <stdout>" in err and "No space left on device" in err, err
    assert sha256(path) == digest


@pytest.mark.parametrize("src", [FOLDS, NO_BN], ids=["folded", "unchanged"])
def test_file_size_limit_mid_write(bnfold, tmp_path, src):
    """ulimit -f 8 (4 kB in sh's 512-byte blocks), SIGXFSZ ignored: the write
    fails with EFBIG part way through the model."""
    path, digest = copy_input(tmp_path, src)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    code, err = run_to(bnfold, [path, "-o", str(out), "--no-verify"], subprocess.DEVNULL,
                       pre="trap '' XFSZ; ulimit -f 8")
    assert code == 2, err
    assert "File too large" in err and str(out) in err, err
    assert os.listdir(out.parent) == [], "output or temporary file left behind"
    assert sha256(path) == digest


def test_file_size_limit_keeps_old_output(bnfold, tmp_path):
    path, digest = copy_input(tmp_path, FOLDS)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    out.write_bytes(b"the previous output")
    code, err = run_to(bnfold, [path, "-o", str(out), "--no-verify"], subprocess.DEVNULL,
                       pre="trap '' XFSZ; ulimit -f 8")
    assert code == 2, err
    assert out.read_bytes() == b"the previous output"
    assert os.listdir(out.parent) == ["model.onnx"]
    assert sha256(path) == digest


@pytest.mark.parametrize("src", [FOLDS, NO_BN], ids=["folded", "unchanged"])
def test_closed_pipe_is_an_error(bnfold, tmp_path, src):
    """A reader that went away: exit 2 with a message, not death by SIGPIPE."""
    path, digest = copy_input(tmp_path, src)
    r, w = os.pipe()
    os.close(r)
    try:
        code, err = run_to(bnfold, [path, "-o", "-", "--no-verify"], w)
    finally:
        os.close(w)
    assert code == 2, "exit %d: %s" % (code, err)
    assert "cannot write to <stdout>" in err and "Broken pipe" in err, err
    assert sha256(path) == digest


# ---------------------------------------------------------------------------
# A full file system: the output folder is a 64 KiB tmpfs, mounted in a
# private mount namespace, and the output needs about 300 kB.

TMPFS_SIZE = "64k"
# Run as `sh -c MOUNT_AND_RUN sh DIR LISTING PREVIOUS KEPT bnfold args...`:
# mount the tmpfs on DIR, write PREVIOUS (unless empty) to DIR/model.onnx,
# run bnfold, then record what DIR holds (hidden files too) in LISTING and
# the content of DIR/model.onnx in KEPT, both outside the tmpfs since the
# mount goes away with the namespace. Exit 97: the mount failed.
MOUNT_AND_RUN = r"""
dir=$1 listing=$2 previous=$3 kept=$4
shift 4
mount -t tmpfs -o size=%s tmpfs "$dir" || exit 97
if [ -n "$previous" ]; then printf %%s "$previous" > "$dir/model.onnx" || exit 97; fi
"$@"
rc=$?
ls -A "$dir" > "$listing"
if [ -e "$dir/model.onnx" ]; then cat "$dir/model.onnx" > "$kept"; fi
exit $rc
""" % TMPFS_SIZE


def make_big_model(path, external=False, with_bn=True):
    """Conv with 128x64x3x3 float weights (295 kB), then a BatchNormalization
    unless with_bn is false (nothing to fold then). external keeps every
    tensor in weights.bin beside the model."""
    rng = np.random.default_rng(11)
    c_out, c_in = 128, 64
    inits = [numpy_helper.from_array(rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32),
                                     "W")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c" if with_bn else "y"], name="conv",
                              pads=[1, 1, 1, 1])]
    if with_bn:
        for name in ("s", "b", "m", "v"):
            v = rng.uniform(0.5, 1.5, c_out) if name in "sv" else rng.standard_normal(c_out)
            inits.append(numpy_helper.from_array(v.astype(np.float32), name))
        nodes.append(helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"],
                                      name="bn"))
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 8, 8])],
        initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    if external:
        onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location="weights.bin", size_threshold=0)
    else:
        with open(path, "wb") as f:
            f.write(m.SerializeToString())


_TMPFS = {}


def tmpfs_launcher(tmp_path):
    """The command prefix under which mounting a tmpfs is allowed (found
    once per session), or pytest.skip saying what each way answered."""
    if "way" not in _TMPFS:
        _TMPFS["way"], _TMPFS["why"] = None, []
        ways = []
        if not shutil.which("unshare"):
            _TMPFS["why"].append("no unshare program on PATH")
        else:
            ways.append(["unshare", "--user", "--map-root-user", "--mount"])
            if os.geteuid() == 0:
                ways.append(["unshare", "--mount"])
            else:
                _TMPFS["why"].append("unshare --mount: not tried, needs root")
        probe = tmp_path / "probe"
        probe.mkdir()
        for way in ways:
            p = subprocess.run(way + ["sh", "-c", 'mount -t tmpfs -o size=%s tmpfs "$1"'
                                      % TMPFS_SIZE, "sh", str(probe)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=RUN_TIMEOUT)
            if p.returncode == 0:
                _TMPFS["way"] = way
                break
            _TMPFS["why"].append("%s: exit %d, %s" % (
                " ".join(way), p.returncode, p.stdout.decode("utf-8", "replace").strip()))
    if _TMPFS["way"] is None:
        pytest.skip("cannot mount a small tmpfs for the ENOSPC tests: " +
                    "; ".join(_TMPFS["why"]))
    return _TMPFS["way"]


def run_on_full_fs(bnfold, tmp_path, args, previous=""):
    """Run bnfold with args, OUT standing for the output folder, a 64 KiB
    tmpfs. Returns (exit code, stderr, names left in the folder, bytes of
    OUT/model.onnx or None)."""
    way = tmpfs_launcher(tmp_path)
    out_dir = tmp_path / "full"
    out_dir.mkdir()
    listing, kept = tmp_path / "listing.txt", tmp_path / "kept"
    args = [a.replace("OUT", str(out_dir)) for a in args]
    p = subprocess.run(way + ["sh", "-c", MOUNT_AND_RUN, "sh", str(out_dir), str(listing),
                              previous, str(kept), bnfold] + args,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode != 97, "mounting the tmpfs failed after the probe worked: " + err
    assert os.listdir(out_dir) == [], "bnfold wrote below the tmpfs"
    return (p.returncode, err, listing.read_text().split(),
            kept.read_bytes() if kept.exists() else None)


def test_enospc_model(bnfold, tmp_path):
    """The model's own write (or its fsync) fails with ENOSPC."""
    src = str(tmp_path / "big.onnx")
    make_big_model(src)
    digest = sha256(src)
    code, err, left, _ = run_on_full_fs(bnfold, tmp_path,
                                        [src, "-o", "OUT/model.onnx", "--no-verify"])
    out = str(tmp_path / "full" / "model.onnx")
    assert code == 2, err
    assert err == "bnfold: cannot write '%s': No space left on device\n" % out, err
    assert left == [], "output or temporary file left behind: %s" % left
    assert sha256(src) == digest


def test_enospc_keeps_previous_output(bnfold, tmp_path):
    src = str(tmp_path / "big.onnx")
    make_big_model(src)
    digest = sha256(src)
    code, err, left, kept = run_on_full_fs(bnfold, tmp_path,
                                           [src, "-o", "OUT/model.onnx", "--no-verify"],
                                           previous="the previous output")
    assert code == 2, err
    assert "No space left on device" in err, err
    assert left == ["model.onnx"], "a temporary file was left behind: %s" % left
    assert kept == b"the previous output"
    assert sha256(src) == digest


@pytest.mark.parametrize("external,with_bn", [(False, True), (True, True), (True, False)],
                         ids=["inline-folded", "external-folded", "external-copied"])
def test_enospc_external_data_file(bnfold, tmp_path, external, with_bn):
    """--external-data=FILE: the model itself would fit, its data file does
    not. A folded weight goes to the data file as the fold makes it; the
    tensors of an external input that nothing changed are copied into it
    when the output is written."""
    folder = tmp_path / "in"
    folder.mkdir()
    src = str(folder / "big.onnx")
    make_big_model(src, external, with_bn)
    digests = {n: sha256(folder / n) for n in os.listdir(folder)}
    code, err, left, _ = run_on_full_fs(
        bnfold, tmp_path, [src, "-o", "OUT/model.onnx", "--external-data=model.bin",
                           "--external-threshold", "0", "--no-verify"])
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bnfold: "), err
    # The message names the folder the data file was going to.
    assert "cannot write the data file in '" in lines[0], err
    assert lines[0].endswith(": No space left on device"), err
    assert left == [], "model, data file or temporary file left behind: %s" % left
    assert {n: sha256(folder / n) for n in os.listdir(folder)} == digests


# ---------------------------------------------------------------------------
# A run ended by a signal takes its temporary files with it.

def start_held_in_check(bnfold, src, out_dir, tmp_path):
    """Start bnfold on src (input 'x') with output in out_dir, its --input a
    FIFO (tmp_path/x.npy) nobody writes yet: the check blocks opening it,
    after the output's temporary file is made. Returns the process once
    that file is there; bnfold must still be running."""
    out_dir.mkdir()
    fifo = str(tmp_path / "x.npy")
    os.mkfifo(fifo)
    proc = subprocess.Popen([bnfold, src, "-o", str(out_dir / "model.onnx"),
                             "--input", "x=" + fifo],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not os.listdir(out_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail("bnfold ended early: %s" % proc.stderr.read())
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_check_leaves_no_temporary_file(bnfold, tmp_path, sig):
    """The output is written to its temporary file while the check runs.
    Here the check blocks opening its --input, a FIFO nobody writes, once
    that file exists; the signal must remove it and end the run by the
    signal, leaving the output folder as it was."""
    src = str(tmp_path / "big.onnx")
    make_big_model(src)
    digest = sha256(src)
    out_dir = tmp_path / "out"
    proc = start_held_in_check(bnfold, src, out_dir, tmp_path)
    try:
        left = os.listdir(out_dir)
        assert len(left) == 1 and left[0].startswith(".bnfold-"), left
        proc.send_signal(sig)
        proc.wait(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -sig, proc.returncode
    assert os.listdir(out_dir) == [], "temporary file left behind"
    assert sha256(src) == digest


def make_model_with_unfolded_weight(path):
    """Conv + BatchNormalization (folded) -> Flatten -> Gemm whose 512 kB
    weight nothing changes: bnfold reads that one from the input file's
    mapping until it writes the output."""
    rng = np.random.default_rng(12)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((8 * 16 * 16, 16)).astype(np.float32),
                                     "W2")]
    for name in ("s", "b", "m", "v"):
        v = rng.uniform(0.5, 1.5, 8) if name in "sv" else rng.standard_normal(8)
        inits.append(numpy_helper.from_array(v.astype(np.float32), name))
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Flatten", ["n"], ["f"]),
             helper.make_node("Gemm", ["f", "W2"], ["y"])]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def feed_fifo(fifo, data, proc):
    """Write data to the FIFO once bnfold opens it for reading. bnfold may
    end first (a SIGBUS from the truncated input can come before it opens
    its --input): then nothing is written, and the caller's wait returns,
    where a blocking open would wait for a reader forever."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            time.sleep(0.01)
            continue
        try:
            os.set_blocking(fd, True)
            os.write(fd, data)
        except BrokenPipeError:
            pass  # bnfold ended while reading
        finally:
            os.close(fd)
        return


def test_input_truncated_during_run_is_an_error(bnfold, tmp_path):
    """The tensors nothing changes are read from the input's mapping up to
    the end of the run. An input cut short meanwhile is reported (exit 2),
    and nothing is written. The run is held in its check by a FIFO given as
    --input while the file is truncated."""
    src = str(tmp_path / "m.onnx")
    make_model_with_unfolded_weight(src)
    out_dir = tmp_path / "out"
    proc = start_held_in_check(bnfold, src, out_dir, tmp_path)
    fifo = str(tmp_path / "x.npy")
    try:
        os.truncate(src, 0)
        buf = io.BytesIO()  # np.save needs a seekable file; a FIFO is not
        np.save(buf, np.ones((1, 4, 16, 16), np.float32))
        feed_fifo(fifo, buf.getvalue(), proc)
        _, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 2, (proc.returncode, err)
    assert "truncated while bnfold was reading it" in err, err
    assert src in err, "the message names the input: %s" % err
    assert os.listdir(out_dir) == [], "output or temporary file left behind"


@pytest.mark.parametrize("size", ["small", "big"])
def test_model_from_a_fifo_is_read_once(bnfold, tmp_path, size):
    """A model given as a named FIFO is read from the one open bnfold makes:
    its bytes are there once, so a second open would drop what the writer
    put in the pipe and then wait for a writer that has gone. The output
    equals the fold of the same model read from a file; the small model
    fits the pipe's buffer (the writer is done before bnfold reads), the
    big one does not."""
    src = str(tmp_path / "model.onnx")
    if size == "big":
        make_big_model(src)
    else:
        shutil.copy(os.path.join(FIXTURES, "example.onnx"), src)
    ref = subprocess.run([bnfold, "-q", src, "-o", str(tmp_path / "ref.onnx")],
                         capture_output=True, timeout=RUN_TIMEOUT)
    assert ref.returncode == 0, ref.stderr
    fifo = str(tmp_path / "model.fifo")
    os.mkfifo(fifo)
    out = tmp_path / "out.onnx"
    proc = subprocess.Popen([bnfold, "-q", fifo, "-o", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    with open(src, "rb") as f:
        feed_fifo(fifo, f.read(), proc)
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("bnfold waited for the FIFO's writer a second time")
    assert proc.returncode == 0, err
    assert out.read_bytes() == (tmp_path / "ref.onnx").read_bytes()
