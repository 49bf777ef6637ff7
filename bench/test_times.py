#!/usr/bin/python3
"""Compare the test suite's per-test times between two runs of `make check`
(issue 14: no test slower by more than 10%). Each run writes a JUnit XML
file through pytest's PYTEST_ADDOPTS:

    PYTEST_ADDOPTS=--junitxml=/tmp/before.xml make check     (on the old tree)
    PYTEST_ADDOPTS=--junitxml=/tmp/after.xml make check      (on the new tree)
    /usr/bin/python3 bench/test_times.py /tmp/before.xml /tmp/after.xml

Only tests present in both runs are compared. A test counts as slower when
it took more than 10% longer AND more than NOISE seconds longer (default
0.1: a test of 50 ms moves by more than 10% from one run to the next on a
shared machine). Prints a Markdown table of the slower ones, the totals, and
exits 1 when any is slower.
"""
import sys
import xml.etree.ElementTree as ET


def times(path):
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        skipped = any(child.tag == "skipped" for child in case)
        if skipped:
            continue
        key = case.get("classname", "") + "::" + case.get("name", "")
        out[key] = float(case.get("time", "0"))
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    noise = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    before, after = times(sys.argv[1]), times(sys.argv[2])
    common = sorted(set(before) & set(after))
    slower = [(k, before[k], after[k]) for k in common
              if after[k] > 1.1 * before[k] and after[k] - before[k] > noise]
    tb = sum(before[k] for k in common)
    ta = sum(after[k] for k in common)
    print(f"{len(common)} tests in both runs: {tb:.1f} s before, {ta:.1f} s after "
          f"({ta / tb if tb else 0:.2f}x); {len(slower)} slower by > 10% and > {noise} s.")
    if slower:
        print()
        print("| test | before | after | ratio |")
        print("| --- | --- | --- | --- |")
        for k, b, a in sorted(slower, key=lambda r: r[2] - r[1], reverse=True):
            print(f"| {k} | {b:.2f} s | {a:.2f} s | {a / b if b else float('inf'):.2f} |")
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
