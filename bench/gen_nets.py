#!/usr/bin/python3
"""Write the benchmark's other networks as ONNX models (random but seeded
weights, opset 13, BatchNormalization kept, exported in eval mode):

  deeplabv3  torchvision's DeepLabv3-MobileNetV3-Large, 1x3x256x256: dilated
             convolutions (ASPP rates 12/24/36 and a dilated backbone tail)
  r3d18      torchvision's R3D-18 video network, 1x3x8x112x112: 3-D convolutions
  fpn960     a small FPN-style detector of our own at 1x3x960x960: a strided
             Conv-BN-ReLU backbone (strides 4 to 32), 1x1 laterals, nearest
             upsampling top-down, 3x3 smoothing Conv-BN and shared class/box
             heads on four levels (the activations dominate, not the weights)

    /usr/bin/python3 bench/gen_nets.py NAME [OUT.onnx]   (default bench/work/NAME.onnx)
"""
import os
import sys

import torch
import torch.nn as nn


def random_stats(model):
    """Fresh BNs have mean 0 and var 1: give them statistics that make the
    fold really change the weights."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0.0, 0.1)
    return model.eval()


def cbr(cin, cout, k=3, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class FPN(nn.Module):
    def __init__(self, width=(32, 64, 128, 256), fpn=96, classes=8, anchors=3):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 16, 3, 2), cbr(16, width[0], 3, 2))  # /4
        stages, cin = [], width[0]
        for i, w in enumerate(width):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(cbr(cin, w, 3, stride), cbr(w, w, 3)))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(w, fpn, 1) for w in width)
        self.smooth = nn.ModuleList(cbr(fpn, fpn, 3) for _ in width)
        self.cls = nn.Sequential(cbr(fpn, fpn, 3), nn.Conv2d(fpn, anchors * classes, 3, 1, 1))
        self.box = nn.Sequential(cbr(fpn, fpn, 3), nn.Conv2d(fpn, anchors * 4, 3, 1, 1))

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        tops = [None] * len(feats)
        top = self.lateral[-1](feats[-1])
        tops[-1] = top
        for i in range(len(feats) - 2, -1, -1):
            top = self.lateral[i](feats[i]) + nn.functional.interpolate(top, scale_factor=2.0,
                                                                         mode="nearest")
            tops[i] = top
        outs = []
        for i, t in enumerate(tops):
            p = self.smooth[i](t)
            outs.append(self.cls(p).flatten(2))
            outs.append(self.box(p).flatten(2))
        return tuple(outs)


def build(name):
    torch.manual_seed(14)
    if name == "deeplabv3":
        from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large
        model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False)
        return random_stats(model), torch.randn(1, 3, 256, 256)
    if name == "r3d18":
        from torchvision.models.video import r3d_18
        return random_stats(r3d_18(weights=None)), torch.randn(1, 3, 8, 112, 112)
    if name == "fpn960":
        return random_stats(FPN()), torch.randn(1, 3, 960, 960)
    sys.exit(f"gen_nets.py: unknown network {name!r} (deeplabv3, r3d18, fpn960)")


class OutOnly(nn.Module):
    """DeepLabv3 returns a dict; export its "out" tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        return y["out"] if isinstance(y, dict) else y


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    name = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "work", name + ".onnx")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    model, x = build(name)
    tmp = out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(OutOnly(model).eval(), x, tmp,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                          opset_version=13, input_names=["input"])
    os.replace(tmp, out)
    print(f"{out}: {os.path.getsize(out) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
