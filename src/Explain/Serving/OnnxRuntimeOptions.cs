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
    /// with this path when it is disposed (not the Winograd races' own sessions, whose timings it
    /// would move). Null (the default): off.
    /// </summary>
    public string? ProfilePrefix { get; set; }

    /// <summary>
    /// Whether predictions run the model's stride-1 3×3 convolutions as the engine's Winograd kernel
    /// (F(2×2) tiles) where it beats ONNX Runtime's convolution on this host, as a map's pass does:
    /// on CPU, for models whose maps run on ONNX Runtime's backward, swapped in after the import
    /// once the probe's scores agree (<see cref="Engine.WinogradPredictions"/>). Off by default, as
    /// oneDNN and cuDNN keep Winograd a choice: its sums are rounded differently from ONNX Runtime's.
    /// </summary>
    public bool WinogradPredictions { get; set; }

    /// <summary>
    /// Whether the CPU sessions the explain engine writes from a served model share its weights
    /// (<see cref="SharedWeights"/>): moved into a file of their own in <see cref="WeightsFolder"/>,
    /// read in place by every such session, where each kept a copy of its own.
    /// </summary>
    public bool ShareWeights { get; set; } = true;

    /// <summary>Where the served models' weights files go (<see cref="ShareWeights"/>); files no process holds are deleted there.</summary>
    public string WeightsFolder { get; set; } = Path.Combine(Path.GetTempPath(), "saliency-weights");

    /// <summary>CUDA device ordinal when the CUDA provider is used.</summary>
    public int CudaDeviceId { get; set; }

    /// <summary>
    /// How the CUDA provider plans each convolution for a new input shape (its
    /// <c>cudnn_conv_algo_search</c>): <c>HEURISTIC</c> (cuDNN's heuristics), <c>EXHAUSTIVE</c>
    /// (times every algorithm) or <c>DEFAULT</c>. Heuristic: an H200 ran resnet18's and
    /// mobilenet_v2's passes as fast once planned, and planned them 2–8× sooner (mobilenet_v2's
    /// import 6.3 s against 17.4 s; docs/performance.md, "GPU").
    /// </summary>
    public string CudnnConvAlgoSearch { get; set; } = "HEURISTIC";
}
