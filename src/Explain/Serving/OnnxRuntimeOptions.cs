namespace SaliencyService.Explain.Serving;

/// <summary>ONNX Runtime settings (configuration section <c>Saliency:OnnxRuntime</c>).</summary>
public sealed class OnnxRuntimeOptions
{
    /// <summary><c>auto</c> (CUDA when it loads, else CPU), <c>cuda</c> or <c>cpu</c>.</summary>
    public string ExecutionProvider { get; set; } = "auto";

    /// <summary>
    /// Threads of one run; 0 = <see cref="Environment.ProcessorCount"/>, which honours a container's
    /// CPU limit (ONNX Runtime's own default counts physical cores, one on some 2-vCPU hosts).
    /// </summary>
    public int IntraOpThreads { get; set; }

    /// <summary>
    /// Whether ORT's threads spin between the operators of a run instead of sleeping and being
    /// woken for each (a model of many small operators runs ~15% faster: measured on mobilenet_v2).
    /// They stop spinning when the run ends, so idle threads never take a core from concurrent work.
    /// </summary>
    public bool AllowSpinning { get; set; } = true;

    /// <summary>
    /// ONNX Runtime's profiler: each session writes a per-operator JSON trace to files starting
    /// with this path when it is disposed. Null (the default): off.
    /// </summary>
    public string? ProfilePrefix { get; set; }

    /// <summary>CUDA device ordinal when the CUDA provider is used.</summary>
    public int CudaDeviceId { get; set; }
}
