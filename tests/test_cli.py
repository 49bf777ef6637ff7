"""Command-line contract of bnfold: options, stdin/stdout, in-place output,
dry runs, exit codes and error messages (tests/fixtures/bad/ among others).
"""

import os
import re
import shutil
import stat

import pytest

import conftest as C

FOLDABLE = os.path.join(C.FIXTURES, "chain_conv_bn.onnx")
UNCHANGED = os.path.join(C.FIXTURES, "no_bn.onnx")
TRY_HELP = "Try 'bnfold --help'."


def read(path):
    with open(path, "rb") as f:
        return f.read()


def assert_one_error_line(proc, *fragments, allow_summary=False):
    """One 'bnfold: ' line naming what failed. With allow_summary (errors that
    happen when writing), a summary line printed before the attempt is let go."""
    lines = proc.stderr.strip("\n").splitlines()
    if allow_summary:
        lines = [ln for ln in lines if not C.RE_SUMMARY.match(ln)]
    assert len(lines) == 1, "expected one stderr line, got:\n" + proc.stderr
    assert lines[0].startswith("bnfold: "), lines[0]
    for frag in fragments:
        assert frag in lines[0], "%r not in %r" % (frag, lines[0])


# ---------------------------------------------------------------------------
# informational options

@pytest.mark.parametrize("opt", ["-h", "--help"])
def test_help(bnfold, opt):
    p = C.run(bnfold, [opt])
    assert p.returncode == 0, C.describe(p)
    text = p.stdout.decode()
    assert "bnfold" in text
    for long_opt in ("--dry-run", "--verbose", "--quiet", "--help", "--version"):
        assert long_opt in text, "%s missing from --help" % long_opt
    assert p.stderr == ""


@pytest.mark.parametrize("opt", ["-V", "--version"])
def test_version(bnfold, opt):
    p = C.run(bnfold, [opt])
    assert p.returncode == 0, C.describe(p)
    assert re.search(r"bnfold.*\d+\.\d+", p.stdout.decode()), p.stdout


@pytest.mark.parametrize("opt", ["--no-such-option", "-Z"])
def test_unknown_option(bnfold, opt, tmp_path):
    out = tmp_path / "out.onnx"
    p = C.run(bnfold, [opt, FOLDABLE, "-o", str(out)])
    assert p.returncode == 2, C.describe(p)
    lines = p.stderr.strip("\n").splitlines()
    assert len(lines) == 2 and lines[1] == TRY_HELP, p.stderr
    assert p.stdout == b""
    assert not out.exists()


def test_missing_o_argument(bnfold):
    p = C.run(bnfold, [FOLDABLE, "-o"])
    assert p.returncode == 2, C.describe(p)
    assert TRY_HELP in p.stderr


def test_no_arguments(bnfold):
    p = C.run(bnfold, [])
    assert p.returncode == 2, C.describe(p)
    assert p.stdout == b""


# ---------------------------------------------------------------------------
# output handling

def test_fold_to_file(bnfold, tmp_path):
    out = tmp_path / "out.onnx"
    p = C.run(bnfold, [FOLDABLE, "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    assert C.parse_summary(p.stderr)["folded"] == 2
    m = C.load_model(str(out))
    C.onnx.checker.check_model(m, full_check=True)
    assert C.bn_names(m) == []
    assert os.listdir(tmp_path) == ["out.onnx"], "temporary files left behind"


def test_stdin_to_stdout(bnfold, tmp_path):
    ref = tmp_path / "ref.onnx"
    assert C.run(bnfold, [FOLDABLE, "-o", str(ref)]).returncode == 0
    p = C.run(bnfold, ["-", "-o", "-"], stdin=read(FOLDABLE))
    assert p.returncode == 0, C.describe(p)
    m = C.load_model(p.stdout)
    C.onnx.checker.check_model(m, full_check=True)
    assert C.bn_names(m) == []
    assert p.stdout == read(str(ref)), "stdout model differs from the file output"
    assert C.parse_summary(p.stderr)["folded"] == 2


def test_stdin_to_stdout_unchanged(bnfold):
    data = read(UNCHANGED)
    p = C.run(bnfold, ["-", "-o", "-"], stdin=data)
    assert p.returncode == 0, C.describe(p)
    assert p.stdout == data


def test_stdin_to_file_and_file_to_stdout(bnfold, tmp_path):
    out = tmp_path / "a.onnx"
    p = C.run(bnfold, ["-", "-o", str(out)], stdin=read(FOLDABLE))
    assert p.returncode == 0, C.describe(p)
    p2 = C.run(bnfold, [FOLDABLE, "-o", "-"])
    assert p2.returncode == 0, C.describe(p2)
    assert p2.stdout == read(str(out))


@pytest.mark.parametrize("opt", ["-n", "--dry-run"])
def test_dry_run_writes_nothing(bnfold, tmp_path, opt):
    out = tmp_path / "out.onnx"
    p = C.run(bnfold, [opt, FOLDABLE, "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    assert not out.exists()
    assert os.listdir(tmp_path) == []
    assert C.parse_summary(p.stderr)["folded"] == 2
    # An existing output is left alone too.
    out.write_bytes(b"keep me")
    p = C.run(bnfold, [opt, FOLDABLE, "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    assert out.read_bytes() == b"keep me"
    p = C.run(bnfold, [opt, FOLDABLE, "-o", "-"])
    assert p.returncode == 0 and p.stdout == b"", C.describe(p)


@pytest.mark.parametrize("opt", ["-q", "--quiet"])
def test_quiet(bnfold, tmp_path, opt):
    out = tmp_path / "out.onnx"
    p = C.run(bnfold, [opt, FOLDABLE, "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    assert p.stderr == ""
    assert out.exists()


@pytest.mark.parametrize("opt", ["-v", "--verbose"])
def test_verbose_lines(bnfold, tmp_path, opt):
    p = C.run(bnfold, [opt, FOLDABLE, "-o", str(tmp_path / "o.onnx")])
    assert p.returncode == 0, C.describe(p)
    lines = C.parse_verbose(p.stderr)
    # conv2's BN has no name: it is reported by its output name.
    assert lines == {"bn1": [("folded", "Conv", "conv1", "conv")],
                     "y": [("folded", "Conv", "conv2", "conv")]}, p.stderr


def test_in_place(bnfold, tmp_path):
    path = tmp_path / "model.onnx"
    shutil.copy(FOLDABLE, path)
    p = C.run(bnfold, [str(path), "-o", str(path)])
    assert p.returncode == 0, C.describe(p)
    m = C.load_model(str(path))
    C.onnx.checker.check_model(m, full_check=True)
    assert C.bn_names(m) == []
    assert os.listdir(tmp_path) == ["model.onnx"], "temporary files left behind"


def test_overwrites_existing_output(bnfold, tmp_path):
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old contents " * 1000)
    p = C.run(bnfold, [FOLDABLE, "-o", str(out)])
    assert p.returncode == 0, C.describe(p)
    C.onnx.checker.check_model(C.load_model(str(out)), full_check=True)


# ---------------------------------------------------------------------------
# errors: exit 2, one line naming the file, nothing written

def assert_nothing_written(folder, before):
    assert sorted(os.listdir(folder)) == sorted(before), \
        "files left in the output folder: %s" % sorted(set(os.listdir(folder)) - set(before))


@pytest.mark.parametrize("name", sorted(C.BAD))
def test_bad_input(bnfold, tmp_path, name):
    spec = C.BAD[name]
    src = os.path.join(C.BAD_DIR, name)
    out = tmp_path / "out.onnx"
    p = C.run(bnfold, [src, "-o", str(out)])
    assert p.returncode == spec["exit"], C.describe(p)
    assert_one_error_line(p, name, spec["message"], *spec.get("names", []))
    assert not out.exists()
    assert_nothing_written(tmp_path, [])


@pytest.mark.parametrize("name", sorted(C.BAD))
def test_bad_input_on_stdin(bnfold, name):
    p = C.run(bnfold, ["-", "-o", "-"], stdin=read(os.path.join(C.BAD_DIR, name)))
    if name == "external_data.onnx":
        # From stdin there is no folder to find w.bin in; refusing is what matters.
        assert p.returncode == 2, C.describe(p)
    else:
        assert p.returncode == C.BAD[name]["exit"], C.describe(p)
    assert p.stdout == b"", "a model was written for a bad input"
    assert_one_error_line(p)


def test_missing_input(bnfold, tmp_path):
    src = str(tmp_path / "does-not-exist.onnx")
    p = C.run(bnfold, [src, "-o", str(tmp_path / "out.onnx")])
    assert p.returncode == 2, C.describe(p)
    assert_one_error_line(p, "does-not-exist.onnx")
    assert_nothing_written(tmp_path, [])


def test_input_is_directory(bnfold, tmp_path):
    p = C.run(bnfold, [str(tmp_path), "-o", str(tmp_path / "out.onnx")])
    assert p.returncode == 2, C.describe(p)
    assert_one_error_line(p, str(tmp_path))
    assert_nothing_written(tmp_path, [])


def test_output_dir_missing(bnfold, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "out.onnx"
    p = C.run(bnfold, [FOLDABLE, "-o", str(out)])
    assert p.returncode == 2, C.describe(p)
    assert_one_error_line(p, "out.onnx", allow_summary=True)
    assert_nothing_written(tmp_path, [])


def test_output_parent_is_a_file(bnfold, tmp_path):
    (tmp_path / "plain").write_bytes(b"x")
    out = tmp_path / "plain" / "out.onnx"
    p = C.run(bnfold, [FOLDABLE, "-o", str(out)])
    assert p.returncode == 2, C.describe(p)
    assert_one_error_line(p, "out.onnx", allow_summary=True)
    assert_nothing_written(tmp_path, ["plain"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_dir_not_writable(bnfold, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        p = C.run(bnfold, [FOLDABLE, "-o", str(ro / "out.onnx")])
        assert p.returncode == 2, C.describe(p)
        assert_one_error_line(p, "out.onnx", allow_summary=True)
        assert os.listdir(ro) == []
    finally:
        ro.chmod(stat.S_IRWXU)


def test_failed_write_keeps_existing_output(bnfold, tmp_path):
    """A bad input must not clobber an existing output file."""
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous")
    p = C.run(bnfold, [os.path.join(C.BAD_DIR, "truncated.onnx"), "-o", str(out)])
    assert p.returncode == 2, C.describe(p)
    assert out.read_bytes() == b"previous"
    assert_nothing_written(tmp_path, ["out.onnx"])


def test_stdout_write_error(bnfold):
    """Write errors on stdout are reported (exit 2), not lost: /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "wb") as full:
        proc = C.subprocess.run([bnfold, FOLDABLE, "-o", "-"], stdout=full,
                                stderr=C.subprocess.PIPE, timeout=C.RUN_TIMEOUT)
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.decode().startswith("bnfold: ")
