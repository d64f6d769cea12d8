using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Inference;

namespace SaliencyService.Api.Configuration;

/// <summary>The <c>Saliency</c> configuration section (env: <c>Saliency__Name</c>).</summary>
public sealed class SaliencyOptions
{
    public const string Section = "Saliency";

    /// <summary>Model repository directory, relative to the working directory unless rooted.</summary>
    public string ModelStore { get; set; } = "data/models";

    /// <summary>Seed an empty store with the demo models shipped beside the service.</summary>
    public bool SeedDemoModels { get; set; } = true;

    /// <summary>Largest image accepted, in pixels (checked before decoding).</summary>
    public long MaxImagePixels { get; set; } = 40_000_000;

    /// <summary>Largest predict/explain request body, in bytes.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Largest model upload, in bytes.</summary>
    public long MaxModelBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Largest <c>.npy</c> tensor accepted, in elements.</summary>
    public long MaxTensorElements { get; set; } = 64L * 1024 * 1024;

    /// <summary>Most <c>image</c> parts in one predict request.</summary>
    public int MaxBatchImages { get; set; } = 64;

    public OnnxRuntimeOptions OnnxRuntime { get; set; } = new();

    public ExplainOptions Explain { get; set; } = new();
}
