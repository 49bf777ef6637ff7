#!/usr/bin/python3
"""Write a ResNet-50-shaped ONNX model (opset 13, input 1x3x224x224, about
100 MB of float32 weights) for bnfold's benchmarks. Weights are random but
seeded, so every run writes the same bytes; each BatchNormalization carries
non-trivial running statistics so folding really changes the weights.

    /usr/bin/python3 bench/gen_resnet50.py [OUT.onnx]   (default bench/work/resnet50.onnx)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # width, blocks, stride
EXPANSION = 4


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, kind):
        self.count += 1
        return f"{kind}_{self.count}"

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x, c_in, c_out, k, stride):
        n = self.name("conv")
        fan_in = c_in * k * k
        w = self.rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / fan_in)
        self.init(n + ".w", w)
        self.nodes.append(helper.make_node(
            "Conv", [x, n + ".w"], [n], name=n, kernel_shape=[k, k],
            strides=[stride, stride], pads=[k // 2] * 4))
        return n

    def bn(self, x, c, gamma_scale=1.0):
        n = self.name("bn")
        r = self.rng
        self.init(n + ".scale", r.uniform(0.5, 1.5, c) * gamma_scale)
        self.init(n + ".bias", r.normal(0.0, 0.1, c))
        self.init(n + ".mean", r.normal(0.0, 0.2, c))
        self.init(n + ".var", r.uniform(0.5, 2.0, c))
        self.nodes.append(helper.make_node(
            "BatchNormalization",
            [x, n + ".scale", n + ".bias", n + ".mean", n + ".var"], [n],
            name=n, epsilon=1e-5))
        return n

    def op(self, kind, inputs, **attrs):
        n = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [n], name=n, **attrs))
        return n

    def conv_bn(self, x, c_in, c_out, k, stride, relu=True, gamma_scale=1.0):
        y = self.bn(self.conv(x, c_in, c_out, k, stride), c_out, gamma_scale)
        return self.op("Relu", [y]) if relu else y

    def bottleneck(self, x, c_in, width, stride):
        c_out = width * EXPANSION
        y = self.conv_bn(x, c_in, width, 1, 1)
        y = self.conv_bn(y, width, width, 3, stride)  # stride on the 3x3 (v1.5)
        # A small last gamma keeps the residual sum from growing block by block.
        y = self.conv_bn(y, width, c_out, 1, 1, relu=False, gamma_scale=0.3)
        short = x
        if stride != 1 or c_in != c_out:
            short = self.conv_bn(x, c_in, c_out, 1, stride, relu=False)
        return self.op("Relu", [self.op("Add", [y, short])]), c_out


def build(seed=50):
    b = Builder(seed)
    x = b.conv_bn("input", 3, 64, 7, 2)
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 64
    for width, blocks, stride in STAGES:
        for i in range(blocks):
            x, c = b.bottleneck(x, c, width, stride if i == 0 else 1)
    x = b.op("GlobalAveragePool", [x])
    x = b.op("Flatten", [x], axis=1)
    b.init("fc.w", b.rng.standard_normal((1000, c)) * np.sqrt(1.0 / c))
    b.init("fc.b", b.rng.normal(0.0, 0.01, 1000))
    b.nodes.append(helper.make_node("Gemm", [x, "fc.w", "fc.b"], ["logits"],
                                    name="fc", transB=1))
    graph = helper.make_graph(
        b.nodes, "resnet50_bench",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
        b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="bnfold-bench")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "work", "resnet50.onnx")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(build().SerializeToString())
    os.replace(tmp, out)
    print(f"{out}: {os.path.getsize(out) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
