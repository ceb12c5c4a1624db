#!/usr/bin/python3
"""Writes the PyTorch golden files that tests/models/test_golden.cpp checks lethe's models against.

Regenerate (needs Debian's python3-torch; the files are committed, so the tests never need it):

    /usr/bin/python3 scripts/make_golden_models.py            # writes tests/models/golden/*.safetensors

For each narrow model it builds the PyTorch module with lethe's parameter names (SPEC section 2,
Normalize first as lethe does), gives BN non-trivial running statistics (a few train-mode
forwards) and random affine parameters, and saves in one safetensors file:
  - the state_dict (float32; num_batches_tracked int64, as PyTorch keeps it),
  - golden.input: a fixed [2,3,32,32] batch in [0,1],
  - golden.logits: eval-mode logits, computed in float64 from the float32 weights,
  - golden.logits_train: train-mode logits of the same batch (batch statistics), also float64,
  - __metadata__: arch, width, num_classes, dataset in lethe's format (models/model.h).
The widths exercise the rounding rule (ResNet 0.1: 6/13/26/51 channels) and both data sets'
normalisation constants, while keeping each file under 1 MB.

Debian's torch has no safetensors module, so the format is written here: an 8-byte little-endian
header length, a JSON header (dtype, shape, data_offsets per tensor, __metadata__) padded with
spaces to a multiple of 8, then the tensors' bytes.
"""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

NORM = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def ch(c, width):
    return max(1, int(round(c * width)))


class Normalize(nn.Module):
    def __init__(self, dataset):
        super().__init__()
        mean, std = NORM[dataset]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean.view(1, 3, 1, 1)) / self.std.view(1, 3, 1, 1)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, width, classes, dataset):
        super().__init__()
        self.normalize = Normalize(dataset)
        w = [ch(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        cin = w[0]
        for i, c in enumerate(w):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c, 1)))
            cin = c
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class VGG16BN(nn.Module):
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]

    def __init__(self, width, classes, dataset):
        super().__init__()
        self.normalize = Normalize(dataset)
        layers, cin = [], 3
        for v in self.CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c = ch(v, width)
            layers += [nn.Conv2d(cin, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            cin = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin * 4, 256), nn.ReLU(), nn.Linear(256, 256),
                                        nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(self.features(self.normalize(x)).flatten(1))


DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    # The safetensors library's order: by descending element size, then by name, which keeps
    # every tensor aligned to its element size.
    for name in sorted(tensors, key=lambda n: (-tensors[n].element_size(), n)):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes()  # little-endian on every machine torch runs on here
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def fmt_width(width):
    # lethe writes the shortest round-trip decimal ("0.1", "0.0625", "1"): repr without ".0".
    s = repr(float(width))
    return s[:-2] if s.endswith(".0") else s


def make(cls, arch, width, classes, dataset, seed, path):
    torch.manual_seed(seed)
    model = cls(width, classes, dataset)
    with torch.no_grad():
        # Non-trivial BN affine parameters and biases, so a swapped weight/bias would show.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        # Running statistics from a few train-mode forwards (num_batches_tracked becomes 3).
        model.train()
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32))
    x = torch.rand(2, 3, 32, 32)
    ref = cls(width, classes, dataset).double()
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        ref.eval()
        logits = ref(x.double()).float()
        ref.train()
        logits_train = ref(x.double()).float()
    tensors = dict(model.state_dict())
    tensors["golden.input"] = x
    tensors["golden.logits"] = logits
    tensors["golden.logits_train"] = logits_train
    metadata = {"arch": arch, "width": fmt_width(width), "num_classes": str(classes),
                "dataset": dataset, "generator": "scripts/make_golden_models.py",
                "torch_version": torch.__version__}
    write_safetensors(path, tensors, metadata)
    n = sum(p.numel() for p in model.parameters())
    print(f"{path}: {arch} width {width}, {n} parameters, {os.path.getsize(path)} bytes")


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "golden")
    os.makedirs(out, exist_ok=True)
    make(ResNet18, "resnet18", 0.1, 10, "cifar10", 1, os.path.join(out, "resnet18_w0.1.safetensors"))
    make(VGG16BN, "vgg16_bn", 0.0625, 100, "cifar100", 2,
         os.path.join(out, "vgg16_bn_w0.0625.safetensors"))


if __name__ == "__main__":
    main()
