using System.Text.Json.Serialization;

namespace SaliencyService.Contracts;

/// <summary>
/// The optional <c>model.json</c> uploaded beside a model. Every field may be omitted; the
/// service fills the gaps from the model itself (see <see cref="Preprocessing"/>).
/// </summary>
public sealed record ModelManifest
{
    /// <summary>Name of the graph input that receives the image; default the first input.</summary>
    public string? Input { get; init; }

    /// <summary>
    /// Name of the graph output that predict ranks and explanations explain (a model that also
    /// outputs features or probabilities); default the first float32 output, else the first real-valued one.
    /// </summary>
    public string? Output { get; init; }

    /// <summary><c>NCHW</c> or <c>NHWC</c>; default NHWC when the last dimension is 1 or 3.</summary>
    public string? Layout { get; init; }

    public int? Height { get; init; }
    public int? Width { get; init; }

    /// <summary><c>RGB</c>, <c>BGR</c> or <c>GRAY</c>: the channel order the model expects.</summary>
    public string? Channels { get; init; }

    /// <summary>Multiplies the 0–255 pixel value before mean and std are applied.</summary>
    public double? Scale { get; init; }

    /// <summary>Per channel, in the model's channel order (one value applies to all).</summary>
    public IReadOnlyList<double>? Mean { get; init; }

    /// <summary>Per channel, in the model's channel order (one value applies to all).</summary>
    public IReadOnlyList<double>? Std { get; init; }

    /// <summary>Class names by output index.</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>Fields the service does not use are kept, so the manifest round-trips.</summary>
    [JsonExtensionData]
    public Dictionary<string, object>? Extra { get; init; }
}
