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
    public static InferenceSession Open(ModelProto model) => Open(model, null);

    /// <param name="optimizedPath">Where ONNX Runtime writes the graph it optimised (its fusions and layouts), if anywhere.</param>
    public static InferenceSession Open(ModelProto model, string? optimizedPath)
    {
        using var options = new SessionOptions();
        NativeOps.Register(options);
        if (optimizedPath is not null) options.OptimizedModelFilePath = optimizedPath;
        return new InferenceSession(model.ToByteArray(), options);
    }
}
