#!/usr/bin/python3
"""Write a large ONNX model whose every tensor is external data, for
measuring bnfold's peak memory on models of several GB. Weights are written
to the data file one tensor at a time; the whole model is never in memory.

    /usr/bin/python3 bench/gen_large_external.py DIR [--gb 4] [--channels 2048]
    /usr/bin/time -f %M bnfold DIR/large.onnx -o OUT/large.onnx --check-memory 64M

The graph is a chain of Conv 1x1 (C x C float32) + BatchNormalization
layers, enough of them to reach the requested size: DIR/large.onnx and its
data file DIR/large.bin. tests/test_external.py uses write_chain_model.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper


def write_chain_model(folder, stem, layers, channels, seed=1):
    """Write folder/stem.onnx with every tensor in folder/stem.bin (4096-
    aligned). Returns (model path, data bytes, bytes of one Conv weight)."""
    c = channels
    rng = np.random.default_rng(seed)
    inits, nodes, offset = [], [], 0
    location = stem + ".bin"

    with open(os.path.join(folder, location), "wb") as f:
        def add(name, arr):
            nonlocal offset
            pad = (-offset) % 4096
            f.write(bytes(pad))
            offset += pad
            raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            f.write(raw)
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=arr.shape,
                            data_location=TensorProto.EXTERNAL)
            for k, v in (("location", location), ("offset", offset), ("length", len(raw))):
                t.external_data.add(key=k, value=str(v))
            inits.append(t)
            offset += len(raw)

        prev = "x"
        for i in range(layers):
            add("w%d" % i, rng.standard_normal((c, c, 1, 1), dtype=np.float32) / np.sqrt(c))
            # scale / sqrt(var) near 1 keeps a deep chain from blowing up
            scale = rng.uniform(0.5, 1.5, c)
            add("s%d" % i, scale)
            add("b%d" % i, rng.standard_normal(c) * 0.1)
            add("m%d" % i, rng.standard_normal(c) * 0.1)
            add("v%d" % i, scale ** 2 * rng.uniform(0.95, 1.05, c))
            nodes.append(helper.make_node("Conv", [prev, "w%d" % i], ["c%d" % i]))
            nodes.append(helper.make_node(
                "BatchNormalization", ["c%d" % i] + ["%s%d" % (p, i) for p in "sbmv"],
                ["y%d" % i]))
            prev = "y%d" % i
    graph = helper.make_graph(
        nodes, stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 1, 1])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, c, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = os.path.join(folder, stem + ".onnx")
    onnx.save(model, path)
    return path, offset, c * c * 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--gb", type=float, default=4.0, help="size of the data file (GB)")
    ap.add_argument("--channels", type=int, default=2048, help="C of each C x C Conv")
    args = ap.parse_args()
    layers = max(1, int(args.gb * 1e9 // (args.channels * args.channels * 4)))
    os.makedirs(args.dir, exist_ok=True)
    path, size, _ = write_chain_model(args.dir, "large", layers, args.channels)
    print("%s: %d layers, %.2f GB of external data" % (path, layers, size / 1e9))


if __name__ == "__main__":
    main()
