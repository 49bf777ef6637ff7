#!/usr/bin/python3
"""Write a VGG11-bn ONNX model (torchvision's architecture, random but seeded
weights, opset 13, input 1x3x224x224, about 530 MB of float32 weights) for
bnfold's benchmarks. It is exported in eval mode with BatchNormalization kept
(no constant folding), so every BN is still there to fold; its classifier is
three Gemms with transB=1, the largest 25088x4096.

    /usr/bin/python3 bench/gen_vgg11bn.py [OUT.onnx]   (default bench/work/vgg11bn.onnx)
"""
import os
import sys

import torch
import torchvision


def build(seed=11):
    torch.manual_seed(seed)
    model = torchvision.models.vgg11_bn(weights=None)
    # Fresh BNs have mean 0 and var 1: give them running statistics that make
    # the fold really change the weights.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0.0, 0.1)
            assert m.running_mean.shape[0] == c
    return model.eval()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "work", "vgg11bn.onnx")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    model = build()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.onnx.export(model, x, tmp, training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False, opset_version=13,
                          input_names=["input"], output_names=["logits"])
    os.replace(tmp, out)
    print(f"{out}: {os.path.getsize(out) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
