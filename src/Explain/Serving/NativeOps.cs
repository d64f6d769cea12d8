using Microsoft.ML.OnnxRuntime;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// The engine's own ONNX Runtime kernels (<c>src/Explain/Native</c>, domain <see cref="Domain"/>),
/// built beside the assemblies where the build found g++. Backward graphs use them only where the
/// library is there; every session that may run one registers it.
/// </summary>
public static class NativeOps
{
    public const string Domain = "ai.saliency";

    /// <summary>
    /// MaxPoolGrad(X, dY) → dX: each window's gradient to its first maximum in X; with the
    /// attribute <c>rectify</c> 1 (2: its positive part) also gated by 0 &lt; X &lt; <c>upper</c>,
    /// the backward of the rectifier whose output X is.
    /// </summary>
    public const string MaxPoolGrad = "MaxPoolGrad";

    private static readonly string? Library = Find();

    /// <summary>The library is beside the assemblies (and not switched off by <c>SALIENCY_NATIVE_OPS=0</c>).</summary>
    public static bool Available => Library is not null;

    /// <summary>Lets sessions made with <paramref name="options"/> run the kernels; ONNX Runtime keeps the library loaded while they live.</summary>
    public static void Register(SessionOptions options)
    {
        if (Library is not null) options.RegisterCustomOpLibrary(Library);
    }

    private static string? Find()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("SALIENCY_NATIVE_OPS") == "0") return null;
        var path = Path.Combine(AppContext.BaseDirectory, "libsaliency_ops.so");
        return File.Exists(path) ? path : null;
    }
}
