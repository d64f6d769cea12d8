#!/usr/bin/env python3
"""Writes a model that does next to nothing (GlobalAveragePool, then Flatten: an NCHW input's
channel means, any batch, channels or size) for bench/run.sh: the service's predict of an
architecture's own upload on it is what HTTP, the multipart body and the answer cost without an
engine, the floor under predict ÷ bare.

Usage: /usr/bin/python3 bench/http_floor_model.py OUT.onnx   (needs Debian's python3-onnx)
"""
import sys

import onnx
from onnx import TensorProto, helper

graph = helper.make_graph(
    [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["means"])],
    "http_floor",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "channels", "height", "width"])],
    [helper.make_tensor_value_info("means", TensorProto.FLOAT, ["batch", "channels"])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
