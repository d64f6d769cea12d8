#!/usr/bin/env python3
# Mixed protocol load on one model: 4 gRPC ModelStreamInfer streams of N requests each, 4 threads of
# N/2 unary ModelInfer calls and 2 threads of N/4 REST /v2 infers, all asking for the top 3 classes.
# Prints how each kind of request was answered: "ok", or its error; under overload the expected
# refusal is "queue is full" (gRPC error_message / UNAVAILABLE, REST 503), never anything else.
# Usage: tools/stress/grpc_mixed_load.py MODEL N [BASE_URL] [GRPC_ADDRESS]
#   (Debian's python3-numpy, python3-grpcio, python3-grpc-tools; defaults http://127.0.0.1:5080, localhost:5081)
import collections, json, os, sys, threading, time, urllib.error, urllib.request
import numpy as np
import grpc

model, n = sys.argv[1], int(sys.argv[2])
base = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:5080"
address = sys.argv[4] if len(sys.argv) > 4 else "localhost:5081"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients"))
import oip_stubs
pb, rpc = oip_stubs.load()

stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name=model))
inp, out = metadata.inputs[0], metadata.outputs[0]
shape = [1] + [d if d > 0 else 224 for d in inp.shape[1:]]
x = np.random.default_rng(0).random(shape, dtype=np.float32)
top3 = {"classification": pb.InferParameter(int64_param=3)}


def request(i):
    return pb.ModelInferRequest(model_name=model, id=str(i), raw_input_contents=[x.tobytes()],
                                inputs=[pb.ModelInferRequest.InferInputTensor(name=inp.name, datatype="FP32", shape=shape)],
                                outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=out.name, parameters=top3)])


counts, lock = collections.Counter(), threading.Lock()
def count(kind):
    with lock: counts[kind] += 1

def stream():
    for answer in stub.ModelStreamInfer(request(i) for i in range(n)):
        count("stream ok" if not answer.error_message else "stream: " + answer.error_message)

def unary():
    for i in range(n // 2):
        try: stub.ModelInfer(request(i)); count("unary ok")
        except grpc.RpcError as e: count(f"unary {e.code().name}: {e.details()}")

def rest():
    body = json.dumps({"inputs": [{"name": inp.name, "shape": shape, "datatype": "FP32", "data": x.ravel().tolist()}],
                       "outputs": [{"name": out.name, "parameters": {"classification": 3}}]}).encode()
    for _ in range(n // 4):
        try:
            urllib.request.urlopen(urllib.request.Request(f"{base}/v2/models/{model}/infer", data=body, headers={"Content-Type": "application/json"})).read()
            count("rest ok")
        except urllib.error.HTTPError as e: count(f"rest {e.code}: {json.loads(e.read()).get('error')}")

threads = [threading.Thread(target=f) for f in [stream] * 4 + [unary] * 4 + [rest] * 2]
started = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
print(f"{time.perf_counter() - started:.1f} s")
for kind, number in sorted(counts.items()): print(f"  {number:6d}  {kind}")
