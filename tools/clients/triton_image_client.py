#!/usr/bin/env python3
# Does what Triton's image_client example (tritonclient's src/python/examples/image_client.py) does
# against the service, step by step, with plain HTTP and grpcio stubs generated from the service's
# proto (tritonclient itself is not installable here): parse_model's checks of the metadata and the
# configuration (one input and output, FP32 output, three dims a sample, FORMAT_NCHW or FORMAT_NHWC),
# a binary input of two images, class_count as the classification parameter, the BYTES answer
# parsed as tritonclient parses it; then the same over gRPC. Exits non-zero if a step fails.
# Usage: tools/clients/triton_image_client.py MODEL IMAGE [CLASSES] [BASE_URL] [GRPC_ADDRESS]
#   (Debian's python3-numpy, python3-pil, python3-grpcio, python3-grpc-tools; defaults: 2,
#   http://127.0.0.1:5080, localhost:5081)
import json, struct, sys, urllib.request
import numpy as np
from PIL import Image
import grpc

model, photo = sys.argv[1], sys.argv[2]
classes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
base = sys.argv[4] if len(sys.argv) > 4 else "http://127.0.0.1:5080"
address = sys.argv[5] if len(sys.argv) > 5 else "localhost:5081"

import oip_stubs
pb, rpc = oip_stubs.load()

get = lambda path: json.load(urllib.request.urlopen(base + path))
metadata, config = get(f"/v2/models/{model}"), get(f"/v2/models/{model}/config")
assert len(metadata["inputs"]) == 1 and len(metadata["outputs"]) == 1 and len(config["input"]) == 1, "one input and one output"
inp, out, input_config = metadata["inputs"][0], metadata["outputs"][0], config["input"][0]
assert out["datatype"] == "FP32", "FP32 output"
batched = config["max_batch_size"] > 0
assert len(inp["shape"]) == 3 + (1 if batched else 0), "three dims a sample"
layout = input_config["format"]
assert layout in ("FORMAT_NCHW", "FORMAT_NHWC"), f"input format {layout}"
dims = inp["shape"][1:] if batched else inp["shape"]
h, w = (dims[0], dims[1]) if layout == "FORMAT_NHWC" else (dims[1], dims[2])
image = np.asarray(Image.open(photo).convert("RGB").resize((w, h)), dtype=np.float32) / 255.0
if layout == "FORMAT_NCHW": image = image.transpose(2, 0, 1)
batch = np.stack([image, image[::-1].copy()]) if batched else image
raw = batch.tobytes()


def deserialize_bytes_tensor(buffer):  # as tritonclient.utils does: a 4-byte length, then the bytes
    strings, offset = [], 0
    while offset < len(buffer):
        (length,) = struct.unpack_from("<I", buffer, offset)
        strings.append(buffer[offset + 4:offset + 4 + length]); offset += 4 + length
    return np.array(strings, dtype=np.object_)


header = json.dumps({"inputs": [{"name": inp["name"], "shape": list(batch.shape), "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}],
                     "outputs": [{"name": out["name"], "parameters": {"binary_data": True, "classification": classes}}]}).encode()
request = urllib.request.Request(f"{base}/v2/models/{model}/infer", data=header + raw, method="POST",
                                 headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))})
response = urllib.request.urlopen(request)
body, length = response.read(), int(response.headers["Inference-Header-Content-Length"])
answer = json.loads(body[:length])["outputs"][0]
assert answer["datatype"] == "BYTES", answer["datatype"]
http_result = deserialize_bytes_tensor(body[length:length + answer["parameters"]["binary_data_size"]]).reshape(answer["shape"])
print("HTTP", answer["shape"])
for sample in (http_result if batched else [http_result]):
    for result in sample:
        value, index, label = result.decode().split(":", 2)
        print(f"    {value} ({index}) = {label}")

stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
grpc_request = pb.ModelInferRequest(model_name=model, raw_input_contents=[raw],
    inputs=[pb.ModelInferRequest.InferInputTensor(name=inp["name"], datatype="FP32", shape=list(batch.shape))],
    outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=out["name"], parameters={"classification": pb.InferParameter(int64_param=classes)})])
grpc_answer = stub.ModelInfer(grpc_request)
grpc_result = deserialize_bytes_tensor(grpc_answer.raw_output_contents[0]).reshape(list(grpc_answer.outputs[0].shape))
assert (grpc_result == http_result).all(), "gRPC and HTTP differ"
assert pb.ModelInput.Format.Name(stub.ModelConfig(pb.ModelConfigRequest(name=model)).config.input[0].format) == layout
print("gRPC: the same classes; config format", layout)
