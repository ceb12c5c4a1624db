#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/seed-*): small valid
and nearly valid inputs from which libFuzzer mutates. Inputs that once crashed a reader are
kept beside them as corpus/<target>/regression-* and are never regenerated.
Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def image(k):
    return bytes((i * 7 + k) % 256 for i in range(3072))


# cifar: first byte 0 = CIFAR-10 layout (label, 3072 pixels), 1 = CIFAR-100 (coarse, fine, pixels).
put("cifar", "c10-two-records", b"\0" + bytes([3]) + image(0) + bytes([9]) + image(1))
put("cifar", "c10-label-out-of-range", b"\0" + bytes([10]) + image(2))
put("cifar", "c10-truncated", b"\0" + bytes([1]) + image(3)[:1000])
put("cifar", "c100-one-record", b"\1" + bytes([4, 57]) + image(4))
put("cifar", "c100-fine-label-100", b"\1" + bytes([4, 100]) + image(5))


def safetensors(header, payload):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + payload


meta = {"arch": "resnet18", "width": "0.0625", "num_classes": "10", "dataset": "cifar10",
        "format": "lethe-checkpoint-1"}
f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
put("safetensors", "two-tensors", safetensors(
    {"__metadata__": meta,
     "conv1.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
     "conv1.weight.mask": {"dtype": "U8", "shape": [2, 3], "data_offsets": [24, 30]}},
    f32 + bytes([1, 0, 1, 1, 0, 1])))
put("safetensors", "int64-and-bf16", safetensors(
    {"step": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
     "x": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]}},
    struct.pack("<q", 7) + bytes([0x80, 0x3f, 0xc0, 0x7f])))
put("safetensors", "nan-weight", safetensors(
    {"fc.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
    struct.pack("<f", float("nan"))))
put("safetensors", "empty-header", safetensors({}, b""))

# config: the shipped configs show the real grammar; a few odd lines besides.
for name in sorted(os.listdir(os.path.join(HERE, "..", "..", "configs"))):
    with open(os.path.join(HERE, "..", "..", "configs", name), "rb") as f:
        put("config", name, f.read())
put("config", "sections-and-lists",
    "# comment\nepochs = 3\nlr = 0.1\n[unlearn]\nmethods = ft, ga , rl\nquiet = yes\n"
    "width = 0.125\nlr-schedule = onecycle\nbatch-size = 1e3\n")
put("config", "bad-lines", "epochs = \nlr == 2\n[x\n= 3\nkey.with.dots = \"quoted\"\n")

# index_list: one original training index per line (split 0..47 of 64 images in the target).
put("index_list", "valid", "0\n5\n7\n47\n")
put("index_list", "duplicate", "3\n3\n")
put("index_list", "out-of-range", "-1\n64\n48\n")
put("index_list", "not-integers", "abc\n1.5\n 2 \n\n")
put("index_list", "spec-forms", "class:3")
put("index_list", "spec-random", "random:5")
