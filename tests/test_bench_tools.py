"""bench/test_times.py, the per-test time comparison of issue 14: it flags
a test only when it is both more than 10% and more than the noise floor
slower, compares only tests present in both runs, and ignores skipped ones."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "bench", "test_times.py")


def junit(path, cases):
    rows = []
    for name, t, skipped in cases:
        body = "<skipped/>" if skipped else ""
        rows.append(f'<testcase classname="tests.t" name="{name}" time="{t}">{body}</testcase>')
    with open(path, "w") as f:
        f.write('<testsuites><testsuite name="pytest">' + "".join(rows) +
                "</testsuite></testsuites>")


def compare(tmp_path, before, after):
    b, a = tmp_path / "b.xml", tmp_path / "a.xml"
    junit(b, before)
    junit(a, after)
    return subprocess.run([sys.executable, SCRIPT, str(b), str(a)], capture_output=True,
                          text=True)


def test_slower_test_is_flagged(tmp_path):
    r = compare(tmp_path, [("slow", 1.0, False), ("same", 2.0, False)],
                [("slow", 1.5, False), ("same", 2.05, False)])
    assert r.returncode == 1, r.stdout
    assert "| tests.t::slow | 1.00 s | 1.50 s | 1.50 |" in r.stdout
    assert "tests.t::same" not in r.stdout
    assert "2 tests in both runs: 3.0 s before, 3.5 s after" in r.stdout


def test_noise_floor_new_and_skipped_tests(tmp_path):
    # +50% but only 0.02 s: noise; a new test and a skipped one: not compared.
    r = compare(tmp_path, [("tiny", 0.04, False), ("skip", 0.1, True)],
                [("tiny", 0.06, False), ("skip", 9.0, False), ("new", 5.0, False)])
    assert r.returncode == 0, r.stdout
    assert "1 tests in both runs" in r.stdout
    assert "0 slower" in r.stdout
