using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Tests.Support;

/// <summary>
/// Default ONNX Runtime sessions for the graphs tests build, with the engine's own kernels
/// registered as every session of the service has them (a backward graph may use them).
/// </summary>
public static class TestSessions
{
    public static InferenceSession Open(ModelProto model)
    {
        using var options = new SessionOptions();
        NativeOps.Register(options);
        return new InferenceSession(model.ToByteArray(), options);
    }
}
