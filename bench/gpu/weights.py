"""Weights of bench/InProcess `gpu-graphs` graphs kept apart, so a GPU host can be sent the graphs alone.

  weights.py split SRC DST   the graphs of SRC written to DST with their float initializers of
                             4,096 elements or more in DST/weights.bin, one copy of each
  weights.py random DST      DST/weights.bin made of seeded random values (He-scaled by fan-in),
                             for a host that was sent no weights: timings do not depend on them
  weights.py inline DST      each graph of DST saved with its weights inside it (a model file the
                             service can import), DST/weights.bin removed
"""
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

LARGE = 4096


def split(source, target):
    os.makedirs(target, exist_ok=True)
    offsets, blob = {}, bytearray()
    for name in sorted(f for f in os.listdir(source) if f.endswith(".onnx")):
        model = onnx.load(os.path.join(source, name))
        for tensor in model.graph.initializer:
            if tensor.data_type != onnx.TensorProto.FLOAT or np.prod(tensor.dims) < LARGE:
                continue
            raw = numpy_helper.to_array(tensor).astype("<f4").tobytes()
            key = hashlib.sha256(raw).hexdigest()
            if key not in offsets:
                offsets[key] = len(blob)
                blob += raw + bytes(-len(raw) % 64)
            tensor.ClearField("float_data")
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
            del tensor.external_data[:]
            for k, v in (("location", "weights.bin"), ("offset", str(offsets[key])), ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = k, v
        onnx.save(model, os.path.join(target, name))
    with open(os.path.join(target, "weights.bin"), "wb") as f:
        f.write(blob)
    print(f"{len(offsets)} tensors, {len(blob) >> 20} MiB in weights.bin")


def random(target):
    spans = {}
    for name in os.listdir(target):
        if not name.endswith(".onnx"):
            continue
        for tensor in onnx.load(os.path.join(target, name), load_external_data=False).graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                entries = {e.key: e.value for e in tensor.external_data}
                spans[int(entries["offset"])] = (int(entries["length"]), list(tensor.dims))
    end = max(offset + length for offset, (length, _) in spans.items())
    blob = np.zeros(end // 4 + 16, dtype="<f4")
    generator = np.random.default_rng(0)
    for offset, (length, dims) in sorted(spans.items()):
        fan_in = int(np.prod(dims[1:])) if len(dims) > 1 else dims[0]
        blob[offset // 4: offset // 4 + length // 4] = generator.standard_normal(length // 4) * np.sqrt(2.0 / fan_in)
    blob.tofile(os.path.join(target, "weights.bin"))
    print(f"{len(spans)} tensors, {end >> 20} MiB of random weights")


def inline(target):
    for name in os.listdir(target):
        if name.endswith(".onnx"):
            path = os.path.join(target, name)
            onnx.save(onnx.load(path), path)
    os.remove(os.path.join(target, "weights.bin"))


if __name__ == "__main__":
    {"split": lambda: split(sys.argv[2], sys.argv[3]), "random": lambda: random(sys.argv[2]),
     "inline": lambda: inline(sys.argv[2])}[sys.argv[1]]()
