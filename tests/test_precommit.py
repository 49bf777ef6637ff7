"""The pre-commit hook of .pre-commit-hooks.yaml, run by the real pre-commit
program (Debian's) in a scratch model repository, offline: the hook
repository is a local git repository holding this tree's hook file, and the
bnfold the hook runs is this build's, first on PATH. A commit of a clean
model passes; a commit adding a model with findings is refused and the
output names it.
"""

import os
import shutil
import subprocess

import pytest

import conftest as C

HOOKS_FILE = os.path.join(C.REPO, ".pre-commit-hooks.yaml")
GOOD = os.path.join(C.FIXTURES, "lint", "clean_folded.onnx")
BAD = os.path.join(C.FIXTURES, "chain_conv_bn.onnx")  # two foldable BatchNormalization


def git(args, cwd, env):
    return subprocess.run(["git"] + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def env(bnfold, tmp_path):
    if shutil.which("pre-commit") is None or shutil.which("git") is None:
        pytest.fail("pre-commit and git are test packages (make deps-test installs them)",
                    pytrace=False)
    home = tmp_path / "home"
    home.mkdir()
    e = dict(os.environ)
    e.update({
        "PATH": os.path.dirname(os.path.abspath(bnfold)) + os.pathsep + e["PATH"],
        "HOME": str(home),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bnfold test", "GIT_AUTHOR_EMAIL": "test@localhost",
        "GIT_COMMITTER_NAME": "bnfold test", "GIT_COMMITTER_EMAIL": "test@localhost",
    })
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        e.pop(key, None)
    return e


def make_hooks_repo(path, env):
    """A git repository holding this tree's .pre-commit-hooks.yaml; its
    commit."""
    path.mkdir()
    shutil.copy(HOOKS_FILE, str(path / ".pre-commit-hooks.yaml"))
    for args in (["init", "-q"], ["add", ".pre-commit-hooks.yaml"],
                 ["commit", "-q", "-m", "hooks"]):
        p = git(args, str(path), env)
        assert p.returncode == 0, p.stderr
    return git(["rev-parse", "HEAD"], str(path), env).stdout.strip()


def test_the_hook_gates_commits_of_onnx_files(tmp_path, env):
    hooks = tmp_path / "hooks"
    rev = make_hooks_repo(hooks, env)
    repo = tmp_path / "models"
    repo.mkdir()
    with open(str(repo / ".pre-commit-config.yaml"), "w") as f:
        f.write("repos:\n"
                "  - repo: %s\n"
                "    rev: %s\n"
                "    hooks:\n"
                "      - id: bnfold-check\n" % (hooks, rev))
    assert git(["init", "-q"], str(repo), env).returncode == 0
    p = subprocess.run(["pre-commit", "install"], cwd=str(repo), env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr

    # A clean model and a text file the hook does not look at: committed.
    shutil.copy(GOOD, str(repo / "good.onnx"))
    with open(str(repo / "notes.txt"), "w") as f:
        f.write("not a model\n")
    git(["add", "."], str(repo), env)
    p = git(["commit", "-m", "good model"], str(repo), env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "bnfold --check" in p.stdout + p.stderr and "Passed" in p.stdout + p.stderr

    # A model with findings: the commit is refused, naming the finding.
    shutil.copy(BAD, str(repo / "bad.onnx"))
    git(["add", "bad.onnx"], str(repo), env)
    p = git(["commit", "-m", "bad model"], str(repo), env)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "Failed" in out and "bn-unfolded" in out, out
    assert git(["rev-list", "--count", "HEAD"], str(repo), env).stdout.strip() == "1"

    # Both models in one bnfold run: each line names its model.
    p = subprocess.run(["pre-commit", "run", "--all-files"], cwd=str(repo), env=env,
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "bnfold: bad.onnx: bn-unfolded:" in out, out
    assert "bnfold: good.onnx: foldable 0 of 0, no findings" in out, out
    assert "bnfold: 2 models: 1 passed, 1 with findings" in out, out
