#!/usr/bin/python3
"""Write the lab of real networks that calibrates bnfold's error model.

    /usr/bin/python3 tests/lab/gen_lab.py [--only NAME,...] [OUT_DIR]

OUT_DIR defaults to tests/lab/work/ (ignored by git: the models are tens
to hundreds of MB). `make check-lab` runs this, then tests/lab/run_lab.py.

Every network is a torchvision architecture with random (seeded) weights.
Its BatchNormalization layers get a random gamma/beta and running
statistics from a few train-mode passes on shifted, scaled random data,
then the module in eval mode is exported with the BN kept
(training=TrainingMode.PRESERVE; the default eval export would fold Conv+BN
itself), initializers not listed as graph inputs.

Variants: every network at opset 13 in float32; ResNet-18 at opsets 9 to
17 and MobileNet v2 at 9 and 17; float16 and bfloat16 copies of a few
networks (and a float64 ResNet-18, to measure the floor where the float64
reference is no more precise than the model). The 16-bit and 64-bit copies
are the float32 export with every float tensor, value type and Cast
converted (float16 by numpy, bfloat16 rounded to nearest even here);
bfloat16 Conv is not in the ONNX specification before opset 22, so
onnxruntime will not run those, but bnfold's evaluator does.
"""

import os
import sys
import warnings
import zlib

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision.models as tvm
from onnx import TensorProto, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
PRIME_STEPS = 3
PRIME_BATCH = 4

# name -> (constructor, input shape)
NETWORKS = {
    "resnet18": (lambda: tvm.resnet18(), (1, 3, 224, 224)),
    "resnet50": (lambda: tvm.resnet50(), (1, 3, 224, 224)),
    "resnext50": (lambda: tvm.resnext50_32x4d(), (1, 3, 224, 224)),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(), (1, 3, 224, 224)),
    "mobilenet_v3_large": (lambda: tvm.mobilenet_v3_large(), (1, 3, 224, 224)),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(), (1, 3, 224, 224)),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(), (1, 3, 224, 224)),
    "densenet121": (lambda: tvm.densenet121(), (1, 3, 224, 224)),
    "vgg11_bn": (lambda: tvm.vgg11_bn(), (1, 3, 224, 224)),
    "regnet_y_400mf": (lambda: tvm.regnet_y_400mf(), (1, 3, 224, 224)),
    "regnet_x_400mf": (lambda: tvm.regnet_x_400mf(), (1, 3, 224, 224)),
    "shufflenet_v2": (lambda: tvm.shufflenet_v2_x1_0(), (1, 3, 224, 224)),
    "googlenet": (lambda: tvm.googlenet(aux_logits=False, transform_input=False,
                                        init_weights=True), (1, 3, 224, 224)),
    "mnasnet1_0": (lambda: tvm.mnasnet1_0(), (1, 3, 224, 224)),
    "inception_v3": (lambda: tvm.inception_v3(aux_logits=False, transform_input=False,
                                              init_weights=True), (1, 3, 299, 299)),
}

# (network, opset, dtype): the lab's models, written as NET_opN[_dtype].onnx
VARIANTS = [(net, 13, "float32") for net in NETWORKS]
VARIANTS += [("resnet18", op, "float32") for op in (9, 11, 15, 17)]
VARIANTS += [("mobilenet_v2", op, "float32") for op in (9, 17)]
VARIANTS += [(net, 13, "float16") for net in ("resnet18", "resnet50", "mobilenet_v2",
                                               "efficientnet_b0", "densenet121")]
VARIANTS += [(net, 15, "bfloat16") for net in ("resnet18", "mobilenet_v2")]
VARIANTS += [("resnet18", 13, "float64")]


def seed_for(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def file_name(net, opset, dtype):
    return "%s_op%d%s.onnx" % (net, opset, "" if dtype == "float32" else "_" + dtype)


def prepare(net):
    """The network with BN state from a few training passes, in eval mode."""
    torch.manual_seed(seed_for(net))
    factory, shape = NETWORKS[net]
    model = factory()
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.3)
    model.train()
    with torch.no_grad():
        for _ in range(PRIME_STEPS):
            model(torch.randn((PRIME_BATCH,) + shape[1:]) * 1.7 + 0.4)
    return model.eval(), shape


# ---- dtype conversion of an exported float32 model ----

def bf16_bits(a):
    """float32 -> bfloat16 bits, rounding to nearest even (NaN kept NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = np.isnan(a)
    rounded[nan] = 0x7FC0
    return rounded.astype(np.uint16)


def convert_tensor(t, dtype):
    if t.data_type != TensorProto.FLOAT:
        return
    a = numpy_helper.to_array(t)
    name = t.name
    if dtype == "bfloat16":
        t.Clear()
        t.name = name
        t.data_type = TensorProto.BFLOAT16
        t.dims.extend(a.shape)
        t.raw_data = bf16_bits(a).tobytes()
    else:
        t.CopyFrom(numpy_helper.from_array(a.astype(np.float16 if dtype == "float16"
                                                    else np.float64), name))


def convert_model(model, dtype):
    """Every float tensor, value type and Cast target of model to dtype."""
    code = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16,
            "float64": TensorProto.DOUBLE}[dtype]
    g = model.graph
    for t in g.initializer:
        convert_tensor(t, dtype)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        tt = vi.type.tensor_type
        if tt.elem_type == TensorProto.FLOAT:
            tt.elem_type = code
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                convert_tensor(a.t, dtype)
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = code
    return model


def export(net, opset, dtype, out_dir):
    model, shape = prepare(net)
    path = os.path.join(out_dir, file_name(net, opset, dtype))
    torch.onnx.export(model, (torch.zeros(shape),), path, opset_version=opset,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      keep_initializers_as_inputs=False, input_names=["input"],
                      output_names=["output"])
    if dtype != "float32":
        m = convert_model(onnx.load(path), dtype)
        onnx.save(m, path)
    n_bn = sum(n.op_type == "BatchNormalization" for n in onnx.load(path).graph.node)
    print("%-36s %7.1f MB, %3d BatchNormalization" % (os.path.basename(path),
                                                     os.path.getsize(path) / 1e6, n_bn))
    return path


def main(argv):
    only = None
    args = list(argv)
    if args[:1] == ["--only"]:
        only = set(args[1].split(","))
        args = args[2:]
    out_dir = args[0] if args else os.path.join(HERE, "work")
    os.makedirs(out_dir, exist_ok=True)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    for net, opset, dtype in VARIANTS:
        name = file_name(net, opset, dtype)
        if only and net not in only and name not in only:
            continue
        if os.path.exists(os.path.join(out_dir, name)):
            print("%-36s (exists)" % name)
            continue
        export(net, opset, dtype, out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
