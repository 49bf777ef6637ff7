#!/usr/bin/python3
"""Run bnfold's default command on every lab network and tabulate the proof.

    /usr/bin/python3 tests/lab/run_lab.py [--bnfold BIN] [--before BIN]
                                          [--runs N] [--seeds N] [--out FILE] [LAB_DIR]

For each model of LAB_DIR (tests/lab/work/, written by gen_lab.py) this
runs `BIN MODEL -o OUT --json REPORT` (the default command: fold, check,
write) N times (default 3) and records the exit status, the median wall
time and, from the JSON report, the error model's figures: per output the
ratio of the folded model's error to the original's own rounding error
(normwise and elementwise, both against the float64 reference), and over
the folds the worst stored-precision ratio and the worst distance of the
exactly computed fold from the exact pair (units of rounding of the
weights). --seeds N (default 5) also checks seeds 1..N with `-n --seed S`,
and with `--check-memory 1K` (the per-fold check alone, which then judges
each fold in stored precision too), and reports the worst figures over all. With --before, the same
command of an older binary is timed (interleaved with the new one's runs,
so both see the same load) and its exit status recorded. The table goes to --out (default
tests/lab/results.md) and stdout. Exits 1 when the default command failed
on some network: the error model's promise is zero false alarms.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen_lab  # noqa: E402


def run_once(binary, model, workdir, extra=()):
    out = os.path.join(workdir, "out.onnx")
    report = os.path.join(workdir, "report.json")
    for f in (out, report):
        if os.path.exists(f):
            os.remove(f)
    args = [binary, model, "--json", report] + list(extra)
    if "-n" not in extra:
        args += ["-o", out]
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = time.perf_counter() - t0
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    data = None
    if os.path.exists(report):
        with open(report) as f:
            data = json.load(f)
    return proc.returncode, (elapsed, cpu), data, proc.stderr.decode("utf-8", "replace")


def timed(binaries, model, runs, workdir):
    """Each binary's first (exit, report, stderr) and median (wall, CPU)
    times; the binaries take turns, run after run."""
    walls = [[] for _ in binaries]
    cpus = [[] for _ in binaries]
    first = [None for _ in binaries]
    for _ in range(runs):
        for k, binary in enumerate(binaries):
            rc, (elapsed, cpu), data, stderr = run_once(binary, model, workdir)
            walls[k].append(elapsed)
            cpus[k].append(cpu)
            if first[k] is None:
                first[k] = (rc, data, stderr)
    return [first[k] + ((statistics.median(walls[k]), statistics.median(cpus[k])),)
            for k in range(len(binaries))]


def fmt(x, spec="%.2g"):
    if x is None:
        return "-"
    return spec % x


def figures(reports):
    """The error model's figures, worst over the JSON reports of one model."""
    f = {"whole": None, "fallback": None, "ratio_norm": None, "ratio_elem": None,
         "used": None, "exact": None, "fold_ratio": None, "fold_used": None, "weight": None,
         "folded": None}

    def worst(key, value):
        if value is not None and (f[key] is None or value > f[key]):
            f[key] = value

    for data in reports:
        check = (data or {}).get("check") or {}
        if data is reports[0]:
            f["whole"] = check.get("whole_graph")
            f["fallback"] = check.get("fallback")
            f["folded"] = ((data or {}).get("summary") or {}).get("folded")
        for o in check.get("outputs") or []:
            worst("ratio_norm", o.get("ratio_norm"))
            worst("ratio_elem", o.get("ratio_elementwise"))
            worst("used", o.get("budget_used"))
        if check.get("whole_graph"):
            worst("exact", check.get("exact_max_abs"))
        for c in check.get("folds") or []:
            if c.get("checked"):
                worst("fold_ratio", c.get("ratio"))
                worst("fold_used", c.get("budget_used"))
                worst("weight", c.get("weight_ulps"))
    return f


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bnfold", default=os.path.join(REPO, "build", "bnfold"))
    ap.add_argument("--before")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    ap.add_argument("lab", nargs="?", default=os.path.join(HERE, "work"))
    args = ap.parse_args(argv)

    rows, failures = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for net, opset, dtype in gen_lab.VARIANTS:
            name = gen_lab.file_name(net, opset, dtype)
            model = os.path.join(args.lab, name)
            if not os.path.exists(model):
                print("missing %s (run gen_lab.py)" % name, file=sys.stderr)
                failures.append(name)
                continue
            bins = [args.bnfold] + ([args.before] if args.before else [])
            results = timed(bins, model, args.runs, workdir)
            rc, data, stderr, t_after = results[0]
            before = results[1] if args.before else None
            reports = [data]
            # Each seed's whole-graph check, and its per-fold check alone
            # (--check-memory 1K skips the whole graph), where each fold is
            # also judged in stored precision.
            for seed in range(1, args.seeds + 1):
                for extra in (["-n"], ["-n", "--check-memory", "1K"]):
                    if seed == 1 and len(extra) == 1:
                        continue  # the timed runs were seed 1
                    rc_s, _, data_s, stderr_s = run_once(args.bnfold, model, workdir,
                                                         extra + ["--seed", str(seed)])
                    reports.append(data_s)
                    if rc_s != 0:
                        rc, stderr = rc_s, stderr_s
            f = figures(reports)
            if rc != 0:
                failures.append(name)
                sys.stderr.write("%s: exit %d\n%s" % (name, rc, stderr))
            rows.append((name, dtype, opset, f, rc, t_after, before))
            print("%-36s exit %d  ratio %s/%s  folds %s  weights %s  %.2fs/%.2fs%s" % (
                name, rc, fmt(f["ratio_norm"]), fmt(f["ratio_elem"]), fmt(f["fold_ratio"]),
                fmt(f["weight"]), t_after[0], t_after[1],
                "" if not before else "  (before: exit %d, %.2fs/%.2fs)" % (
                    before[0], before[3][0], before[3][1])),
                flush=True)
    write_table(args, rows, failures)
    return 1 if failures else 0


def write_table(args, rows, failures):
    lines = [
        "# The error model on the lab of networks",
        "",
        "Written by `tests/lab/run_lab.py` (`make check-lab`) on the models of",
        "`tests/lab/gen_lab.py`: torchvision architectures with random weights,",
        "BatchNormalization statistics from %d train-mode passes, exported with the"
        % gen_lab.PRIME_STEPS,
        "BN kept. Each row is the default command `bnfold MODEL -o OUT` (median of",
        "%d runs; 2 cores shared with other work, so times move by tens of percent);"
        % args.runs,
        "the error figures are the worst over seeds 1 to %d (`--seed S`), each run" % args.seeds,
        "also with the whole-graph check skipped (`--check-memory 1K`).",
        "",
        "- ratio: the folded model's error against the float64 reference divided by",
        "  the original's (normwise ||B-R||/||A-R|| and elementwise max|B-R|/max|A-R|),",
        "  worst over outputs; the check passes up to K = 4 (plus the floor);",
        "- used: the worst error over its limit K |A-R| + floor (passes up to 1);",
        "- folds: the worst per-fold ratio and share of the limit used (stored",
        "  precision, the same criterion, from the runs where the per-fold check",
        "  stood alone), and the worst distance of the fold computed exactly from",
        "  the exact pair, in units of rounding of the weights (passes up to 16);",
        "- exact: the largest |B - R| over the outputs;",
        "- time: wall and CPU (user + system) seconds of the default run%s." % (
            ", before (the binary given as --before) and after" if args.before else ""),
        "",
        "| model | dtype | opset | exit | BN folded | ratio norm | ratio elem | used "
        "| fold ratio | fold used | weights (ulps) | exact max abs | time before (wall / CPU) "
        "| time after (wall / CPU) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, dtype, opset, f, rc, t_after, before in rows:
        whole = f["whole"]
        lines.append("| %s | %s | %d | %d%s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                     "| %.2f / %.2f s |" % (
            name[:-5], dtype, opset, rc,
            "" if not before else " (before %d)" % before[0],
            f["folded"] if f["folded"] is not None else "-",
            fmt(f["ratio_norm"]) if whole else "(per fold)",
            fmt(f["ratio_elem"]) if whole else "-",
            fmt(f["used"]) if whole else "-",
            fmt(f["fold_ratio"]), fmt(f["fold_used"]), fmt(f["weight"]), fmt(f["exact"]),
            "%.2f / %.2f s" % before[3] if before else "-", t_after[0], t_after[1]))
    fallbacks = [(r[0], r[3]["fallback"]) for r in rows if not r[3]["whole"]]
    if fallbacks:
        lines += ["", "Whole-graph check skipped (the per-fold check decided alone):", ""]
        lines += ["- %s: %s" % (n[:-5], why) for n, why in fallbacks]
    by_dtype = {}
    for name, dtype, opset, f, rc, t_after, before in rows:
        if f["whole"]:
            r = max(f["ratio_norm"] or 0, f["ratio_elem"] or 0)
            w = by_dtype.setdefault(dtype, [0, 0, 0, 0])
            by_dtype[dtype] = [max(w[0], r), max(w[1], f["used"] or 0),
                               max(w[2], f["fold_used"] or 0), max(w[3], f["weight"] or 0)]
    lines += ["", "Worst by dtype (output ratio, output used, fold used, weights):"]
    lines += ["- %s: %.2g, %.2g, %.2g, %.2g" % ((k,) + tuple(v))
              for k, v in sorted(by_dtype.items())]
    if rows and all(r[6] for r in rows):
        tb = [sum(r[6][3][k] for r in rows) for k in (0, 1)]
        ta = [sum(r[5][k] for r in rows) for k in (0, 1)]
        lines += ["", "Sum over the lab: before %.1f s wall, %.1f s CPU; after %.1f s wall, "
                  "%.1f s CPU." % (tb[0], tb[1], ta[0], ta[1])]
    lines += ["", "Default command failed on: %s." % (", ".join(failures) or "none")]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
