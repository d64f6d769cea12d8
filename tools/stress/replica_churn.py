#!/usr/bin/env python3
"""Imports, replaces and deletes models on replicas that share one store while others predict and
explain on them; prints the statuses and exits non-zero on any answer outside the contract (5xx, or a
4xx other than 400/404/409/422). Connection failures (a replica being killed) count as status 0.

Usage: tools/stress/replica_churn.py PORT[,PORT...] SECONDS [WRITERS] [READERS]
  e.g. two replicas on one store, then compare what each lists afterwards:
    Saliency__ModelStore=/tmp/store Saliency__ModelStore__PollSeconds=0.5 Saliency__Grpc__Port=0 \
      Saliency__RateLimit__PermitsPerSecond=0 ASPNETCORE_URLS=http://127.0.0.1:5100 dotnet SaliencyService.Api.dll &
    (the same with port 5101), then: tools/stress/replica_churn.py 5100,5101 120 6 3
"""
import collections, os, random, sys, threading, time, urllib.error, urllib.request, uuid

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "SaliencyService.Tests", "Fixtures")
MODELS = ["mini_resnet", "mini_mobilenet", "seed_cnn"]
NAMES = ["m1", "m2", "m3"]
ALLOWED = {0, 200, 201, 204, 400, 404, 409, 422}


def read(model, file):
    with open(os.path.join(FIXTURES, model, file), "rb") as f:
        return f.read()


def multipart(fields):
    boundary = uuid.uuid4().hex
    body = b""
    for name, (filename, data, content_type) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def call(method, port, path, body=None, content_type=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:  # refused or reset: a replica being killed
        return 0, str(e).encode()


def main():
    ports = [int(p) for p in sys.argv[1].split(",")]
    seconds = float(sys.argv[2])
    writers = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    readers = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    onnx = {m: read(m, "model.onnx") for m in MODELS}
    manifests = {m: read(m, "model.json") for m in MODELS}
    tensors = [read(m, "input0.tensor.npy") for m in MODELS]
    statuses, bad, lock = collections.Counter(), [], threading.Lock()
    end = time.time() + seconds

    def note(kind, status, body):
        with lock:
            statuses[(kind, status)] += 1
            if status not in ALLOWED:
                bad.append((kind, status, body[:300]))

    def writer():
        while time.time() < end:
            op, name, port = random.choice(["import", "replace", "replace", "delete"]), random.choice(NAMES), random.choice(ports)
            if op == "delete":
                note(op, *call("DELETE", port, f"/v1/models/{name}"))
                continue
            model = random.choice(MODELS)
            body, content_type = multipart({"file": ("model.onnx", onnx[model], "application/octet-stream"),
                                            "name": (None, name.encode(), "text/plain"),
                                            "manifest": (None, manifests[model], "application/json")})
            note(op, *call("POST", port, "/v1/models" + ("?replace=true" if op == "replace" else ""), body, content_type))

    def reader():
        while time.time() < end:
            name, port = random.choice(NAMES), random.choice(ports)
            path = random.choice([f"/v1/models/{name}/predict", f"/v1/models/{name}/explain?format=npy"])
            kind = path.split("/")[4].split("?")[0]
            for tensor in tensors:  # the name may hold any of the models: the first tensor that fits
                body, content_type = multipart({"tensor": ("x.npy", tensor, "application/octet-stream")})
                status, answer = call("POST", port, path, body, content_type)
                if status != 400:
                    break
            note(kind, status, answer)

    threads = [threading.Thread(target=writer) for _ in range(writers)] + [threading.Thread(target=reader) for _ in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key, count in sorted(statuses.items()):
        print(key, count)
    print("outside the contract:", len(bad))
    for entry in bad[:20]:
        print(entry)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
