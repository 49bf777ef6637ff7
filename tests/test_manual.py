"""The manual and the installation: the EXAMPLES of man/bnfold.1 run on
fixtures (model names substituted by copying fixtures under those names)
with the exit codes they promise; every option of --help and every finding
code is in the manual and the bash completion; `make install` / `make
uninstall` into a temporary DESTDIR.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

import conftest as C

MAN = os.path.join(C.REPO, "man", "bnfold.1")
COMPLETION = os.path.join(C.REPO, "man", "bnfold.bash-completion")
TORCH = os.path.join(C.FIXTURES, "torch")
LINT = os.path.join(C.FIXTURES, "lint")
FOLDABLE = os.path.join(C.FIXTURES, "chain_conv_bn.onnx")
with open(os.path.join(LINT, "expected.json")) as _f:
    CODES = sorted({c for e in json.load(_f).values() for c in e["codes"]})


def read(path):
    with open(path) as f:
        return f.read()


def unescape(line):
    return line.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'")


def man_examples():
    """The .nf/.fi blocks of the EXAMPLES section, as shell text."""
    text = read(MAN)
    section = text.split("\n.SH EXAMPLES\n", 1)[1].split("\n.SH ", 1)[0]
    return ["\n".join(unescape(ln) for ln in block.strip("\n").splitlines())
            for block in re.findall(r"^\.nf\n(.*?)^\.fi$", section, re.S | re.M)]


# For each example, in the manual's order: runs of (files to place under the
# example's names, expected exit status, text expected on stdout or None).
SCENARIOS = [
    [({"model.onnx": FOLDABLE}, 0, None)],
    [({"model.onnx": os.path.join(LINT, "bn_unfolded_dynamic.onnx")}, 0, None)],
    [({"model.onnx": FOLDABLE}, 0, None)],
    # A fold made elsewhere: the same model passes; one that computes
    # something else fails (its BN in training mode), and unrelated
    # models cannot be compared.
    [({"original.onnx": FOLDABLE, "folded-elsewhere.onnx": FOLDABLE}, 0, None),
     ({"original.onnx": os.path.join(TORCH, "training_mode_evaltwin.onnx"),
       "folded-elsewhere.onnx": os.path.join(TORCH, "training_mode.onnx")}, 1, None),
     ({"original.onnx": os.path.join(TORCH, "training_mode_evaltwin.onnx"),
       "folded-elsewhere.onnx": os.path.join(TORCH, "resnet_tiny.onnx")}, 2, None)],
    # The CI gate.
    [({"model.onnx": os.path.join(LINT, "clean_folded.onnx")}, 0, None),
     ({"model.onnx": os.path.join(TORCH, "training_mode.onnx")}, 1, None),
     ({"model.onnx": os.path.join(LINT, "bn_untrained_stats.onnx")}, 1, None)],
    # The deploy script.
    [({"model.onnx": os.path.join(TORCH, "training_mode.onnx")}, 0, "2\n"),
     ({"model.onnx": os.path.join(LINT, "bn_training_consumed.onnx")}, 1, "")],
    # Comparing two exported graphs.
    [({"old.onnx": FOLDABLE, "new.onnx": FOLDABLE}, 0, None),
     ({"old.onnx": os.path.join(TORCH, "training_mode_evaltwin.onnx"),
       "new.onnx": os.path.join(TORCH, "training_mode.onnx")}, 1, None)],
    # Gating a folder of exports: the failing model is named.
    [({"exports/a.onnx": FOLDABLE,
       "exports/sub/b.onnx": os.path.join(LINT, "clean_folded.onnx")}, 0, ""),
     ({"exports/a.onnx": FOLDABLE,
       "exports/bad.onnx": os.path.join(TORCH, "training_mode.onnx")}, 1,
      "exports/bad.onnx: unchanged\n")],
]


def test_examples_are_all_covered():
    examples = man_examples()
    assert len(examples) == len(SCENARIOS), examples
    joined = "\n".join(examples)
    assert "bnfold --check model.onnx || exit 1" in joined
    assert "--compare" in joined and "--json" in joined


@pytest.mark.parametrize("index", range(len(SCENARIOS)))
def test_man_example_runs(bnfold, index, tmp_path):
    script = man_examples()[index]
    env = dict(os.environ, PATH=os.path.dirname(bnfold) + os.pathsep + os.environ["PATH"])
    for k, (files, want_rc, want_out) in enumerate(SCENARIOS[index]):
        work = tmp_path / ("run%d" % k)
        work.mkdir()
        for name, src in files.items():
            os.makedirs(os.path.dirname(str(work / name)), exist_ok=True)
            shutil.copy(src, str(work / name))
        p = subprocess.run(["sh", "-c", script], cwd=str(work), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        msg = "example %d run %d:\n%s\nexit %d\n%s" % (index, k, script, p.returncode,
                                                       p.stderr.decode())
        assert p.returncode == want_rc, msg
        if want_out is not None:
            assert p.stdout.decode() == want_out, msg


def help_options(bnfold):
    text = C.run(bnfold, ["--help"]).stdout.decode()
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text)))


# Options other work in progress added to --help before documenting them in
# bnfold(1) (external data, BatchNormalization lowering): remove each name
# here when its manual entry lands.
MANUAL_PENDING = set()  # options whose manual entry is still to be written


def test_every_option_is_in_the_manual_and_completion(bnfold):
    man = read(MAN)
    completion = read(COMPLETION)
    opts = help_options(bnfold)
    assert "--check" in opts and "--train-mode" in opts and "--json" in opts
    for opt in opts:
        in_manual = re.search(r"^\.(B|BI|BR) .*%s(?![\w\\-])" % re.escape(opt.replace("-", "\\-")),
                              man, re.M)
        assert in_manual or opt in MANUAL_PENDING, "%s missing from the manual" % opt
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), completion), \
            "%s missing from the completion" % opt


def test_every_finding_code_is_documented():
    man = unescape(read(MAN))
    completion = read(COMPLETION)
    for code in CODES:
        assert ".B %s" % code in man, code
        assert code in completion, code


def test_manual_renders_cleanly():
    if not shutil.which("groff"):
        pytest.skip("groff not installed")
    p = subprocess.run(["groff", "-man", "-ww", "-z", MAN], stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()


def complete(words):
    """What the completion function offers for the command line words."""
    script = ('source "%s"; COMP_WORDS=(%s); COMP_CWORD=%d; _bnfold; printf "%%s\\n" '
              '"${COMPREPLY[@]}"' % (COMPLETION, " ".join("'%s'" % w for w in words),
                                     len(words) - 1))
    p = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode().split()


def test_completion_offers_options_and_codes():
    assert "--train-mode" in complete(["bnfold", "--tr"])
    assert complete(["bnfold", "--warn-only", "bn-tr"]) == ["bn-training-mode"]
    assert complete(["bnfold", "--ignore", "fp16-overflow,fp16-u"]) == \
        ["fp16-overflow,fp16-underflow"]
    assert complete(["bnfold", "--train-mode", "e"]) == ["eval"]
    assert complete(["bnfold", "--train-mode=r"]) == ["--train-mode=refuse"]
    assert complete(["bnfold", "--train-mode", "=", "r"]) == ["refuse"]  # bash's split
    assert complete(["bnfold", "--train-mode", "="]) == ["refuse", "eval"]


def make(args, tmp_path):
    p = subprocess.run(["make", "-s", "-C", C.REPO] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0, p.stderr.decode()


def installed_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_install_and_uninstall(bnfold, tmp_path):
    dest = tmp_path / "dest"
    common = ["DESTDIR=%s" % dest, "PREFIX=/opt/bnf", "INSTALL_BIN=%s" % bnfold]
    make(["install"] + common, tmp_path)
    want = ["opt/bnf/bin/bnfold", "opt/bnf/share/bash-completion/completions/bnfold",
            "opt/bnf/share/man/man1/bnfold.1"]
    assert installed_files(str(dest)) == want
    binary = dest / "opt/bnf/bin/bnfold"
    assert os.access(str(binary), os.X_OK)
    v = subprocess.run([str(binary), "--version"], stdout=subprocess.PIPE, timeout=60)
    assert v.returncode == 0 and v.stdout.startswith(b"bnfold ")
    assert (dest / "opt/bnf/share/man/man1/bnfold.1").read_text() == read(MAN)
    assert (dest / "opt/bnf/share/bash-completion/completions/bnfold").read_text() == \
        read(COMPLETION)
    make(["uninstall"] + common, tmp_path)
    assert installed_files(str(dest)) == []


def test_install_honours_bindir_and_mandir(bnfold, tmp_path):
    dest = tmp_path / "dest"
    common = ["DESTDIR=%s" % dest, "INSTALL_BIN=%s" % bnfold, "BINDIR=/b", "MANDIR=/m"]
    make(["install"] + common, tmp_path)
    assert installed_files(str(dest)) == [
        "b/bnfold", "m/man1/bnfold.1", "usr/local/share/bash-completion/completions/bnfold"]
    make(["uninstall"] + common, tmp_path)
    assert installed_files(str(dest)) == []
