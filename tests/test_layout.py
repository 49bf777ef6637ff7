"""The shape of the source tree and the build: rooms with one-way doors
(a call from a room to one above it fails the build), a thin main.c, a
parallel build that runs protoc-c once, flags that rebuild when they change,
and the JSON report on a terminal."""

import os
import pty
import re
import shutil
import subprocess

import pytest

from conftest import REPO, describe, run

ROOMS = ["util", "io", "graph", "eval", "fold", "check", "cli"]
EXAMPLE = os.path.join(REPO, "tests", "fixtures", "example.onnx")


def test_every_source_file_lives_in_a_room():
    top = [n for n in os.listdir(os.path.join(REPO, "src")) if n.endswith((".c", ".h"))]
    assert top == [], "files outside a room: %s" % top
    rooms = sorted(d for d in os.listdir(os.path.join(REPO, "src"))
                   if os.path.isdir(os.path.join(REPO, "src", d)))
    assert rooms == sorted(ROOMS)


def test_includes_point_down_only():
    """The headers a room includes come from it or from rooms to its left."""
    bad = []
    for room in ROOMS:
        allowed = set(ROOMS[:ROOMS.index(room) + 1])
        folder = os.path.join(REPO, "src", room)
        for name in os.listdir(folder):
            with open(os.path.join(folder, name)) as f:
                for m in re.finditer(r'#include "([a-z]+)/', f.read()):
                    if m.group(1) not in allowed:
                        bad.append("src/%s/%s includes %s/" % (room, name, m.group(1)))
    assert bad == [], "\n".join(bad)


def test_main_is_thin():
    with open(os.path.join(REPO, "src", "cli", "main.c")) as f:
        assert len(f.readlines()) <= 250


def scratch_tree(tmp_path):
    """A copy of what the build reads, to build with changes of its own."""
    tree = tmp_path / "tree"
    for part in ("Makefile", "src", "proto", ".clang-format"):
        src = os.path.join(REPO, part)
        if os.path.isdir(src):
            shutil.copytree(src, tree / part)
        else:
            os.makedirs(tree, exist_ok=True)
            shutil.copy(src, tree / part)
    return tree


def make(tree, *args):
    return subprocess.run(["make", "-C", str(tree), "CFLAGS=-O0", "CC=cc"] + list(args),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(os.environ.get("BNFOLD_BUILD", "build") != "build",
                    reason="the build checks run once, in the plain build")
def test_backward_door_fails_the_build_and_parallel_builds_are_clean(tmp_path):
    tree = scratch_tree(tmp_path)
    # From clean with far more jobs than files: the generated protobuf
    # files are made once, and the build succeeds, twice in a row.
    for _ in range(2):
        p = make(tree, "-j16", "clean", "all")
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        assert p.stdout.count("protoc-c ") == 1, p.stdout
    assert make(tree, "clean").returncode == 0
    p = make(tree, "-j16", "all")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.count("protoc-c ") == 1, p.stdout
    # Flags are part of what an object depends on.
    p = make(tree, "all")
    assert "is up to date" in p.stdout or " -c " not in p.stdout, p.stdout
    p = make(tree, "WERROR=-Werror", "all")
    assert p.returncode == 0 and " -Werror " in p.stdout, p.stdout
    # A room calling the room above it: util calling the fold.
    with open(tree / "src" / "util" / "zz_backward.c", "w") as f:
        f.write('#include "fold/fold.h"\n'
                "int bnf_backward_probe(void);\n"
                "int bnf_backward_probe(void) { return bnf_fold_model(0, 0, 0, 0); }\n")
    p = make(tree, "all")
    assert p.returncode != 0, "a backward call linked:\n" + p.stdout[-2000:]
    assert "room util calls a room above it" in p.stderr, p.stderr[-2000:]
    assert "bnf_fold_model" in p.stderr, p.stderr[-2000:]


def test_json_report_on_a_terminal(bnfold):
    """--json - writes the report to standard output even when that is a
    terminal (the binary-model writer refuses terminals; the report is
    text)."""
    leader, follower = pty.openpty()
    try:
        p = subprocess.Popen([bnfold, "--check", "--json", "-", EXAMPLE], stdout=follower,
                             stderr=subprocess.PIPE, text=True)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        rc = p.wait(timeout=120)
        err = p.stderr.read()
    finally:
        os.close(leader)
    out = b"".join(chunks).decode()
    assert rc in (0, 1), err
    assert "refusing" not in err, err
    assert '"schema"' in out and out.strip().endswith("}"), out[-500:]


def test_binary_model_still_refused_on_a_terminal(bnfold):
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([bnfold, EXAMPLE, "-o", "-"], stdout=follower,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(follower)
        os.close(leader)
    assert p.returncode == 2 and "terminal" in p.stderr, p.stderr


def test_library_symbols_have_the_prefix():
    """Every global symbol the library archives define (the generated
    protobuf-c code aside) starts with bnf_."""
    build = os.environ.get("BNFOLD_BUILD", "build")
    libdir = os.path.join(REPO, build, "lib")
    archives = sorted(os.path.join(libdir, n) for n in os.listdir(libdir) if n.endswith(".a"))
    assert archives, libdir
    out = subprocess.run(["nm", "-A", "--defined-only", "--extern-only"] + archives,
                         capture_output=True, text=True, check=True).stdout
    # Symbol lines read "archive:member:address type name".
    symbols = [line for line in out.splitlines() if len(line.split()) == 3]
    assert len(symbols) > 100, out[:2000]
    bad = [line for line in symbols
           if ":onnx.pb-c.o:" not in line
           and not line.split()[-1].startswith(("bnf_", "__"))]  # "__": the compiler's
    assert bad == [], "\n".join(bad[:40])
