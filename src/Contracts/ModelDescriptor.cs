namespace SaliencyService.Contracts;

/// <summary>What the service knows about one served model (GET /v1/models/{name}).</summary>
public sealed record ModelDescriptor(
    string Name,
    string Sha256,
    long SizeBytes,
    DateTimeOffset ImportedAt,
    string? Producer,
    IReadOnlyList<TensorDescriptor> Inputs,
    IReadOnlyList<TensorDescriptor> Outputs,
    Preprocessing Preprocessing,
    IReadOnlyList<string>? Labels,
    string ExecutionProvider,
    ExplainDescriptor Explain)
{
    /// <summary>
    /// ONNX Runtime's graph optimizations the model's session was made with: <c>all</c>, or
    /// <c>layout</c> where all of them crashed the import's check (ONNX Runtime 1.31 on float16 attention).
    /// </summary>
    public string GraphOptimization { get; init; } = "all";
}

/// <summary>A graph input or output; dynamic dimensions are -1.</summary>
public sealed record TensorDescriptor(string Name, IReadOnlyList<long> Shape, string DataType);

/// <summary>Whether and how the model can be explained.</summary>
/// <param name="GradientEngine">
/// What computes the model's gradients: <c>onnxruntime</c> (its backward written as an ONNX graph)
/// or <c>libtorch</c> (autograd through the mirror); null when it is not explainable.
/// </param>
/// <param name="GradientEngineReason">Why: how each engine compared with float64 autograd on the import's probe.</param>
public sealed record ExplainDescriptor(
    bool Supported,
    IReadOnlyList<string> UnsupportedOperators,
    double? ParityMaxAbsDiff,
    string? DefaultLayer,
    IReadOnlyList<LayerDescriptor> Layers,
    string? Reason,
    string? GradientEngine = null,
    string? GradientEngineReason = null);

/// <summary>A tensor of the graph that Grad-CAM can use.</summary>
/// <param name="Layout">How it lays out its grid: <c>NCHW</c>, <c>NHWC</c> (Swin) or <c>tokens</c> ([N, T, C], ViT: reshaped to the patch grid).</param>
public sealed record LayerDescriptor(string Name, IReadOnlyList<long> Shape, string Layout = "NCHW");
