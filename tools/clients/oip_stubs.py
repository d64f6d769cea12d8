"""The service's gRPC stubs for Python scripts, generated from its own proto into a temporary folder
(Debian's python3-grpc-tools): `pb, rpc = oip_stubs.load()`."""
import os, subprocess, sys, tempfile

PROTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "Api", "Protos")


def load():
    stubs = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTOS, f"--python_out={stubs}", f"--grpc_python_out={stubs}",
                    os.path.join(PROTOS, "grpc_predict_v2.proto")], check=True)
    sys.path.insert(0, stubs)
    import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
    return grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc
