using Microsoft.AspNetCore.Mvc;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;

namespace SaliencyService.Api.Apis;

/// <summary>The query of POST /v1/models/{name}/explain: what to compute, and how to write and draw it.</summary>
public sealed class ExplainQuery
{
    public static readonly string[] Formats = ["png", "json", "npy"];

    /// <summary>guided-backprop (default), gradient, deconvnet, input-x-gradient, integrated-gradients, smoothgrad, grad-cam, guided-grad-cam.</summary>
    [FromQuery(Name = "method")] public string? Method { get; init; }

    /// <summary>Class index into the flattened output of one sample, or a label; default the top-1 of the pre-softmax score.</summary>
    [FromQuery(Name = "target")] public string? Target { get; init; }

    /// <summary>Grad-CAM layer: an ONNX tensor name from explain.layers; default explain.defaultLayer.</summary>
    [FromQuery(Name = "layer")] public string? Layer { get; init; }

    /// <summary>Integrated gradients: steps from the zero baseline (default 50).</summary>
    [FromQuery(Name = "steps")] public int? Steps { get; init; }

    /// <summary>SmoothGrad: noisy samples (default 25).</summary>
    [FromQuery(Name = "samples")] public int? Samples { get; init; }

    /// <summary>SmoothGrad: noise σ as a fraction of the input's value range (default 0.15).</summary>
    [FromQuery(Name = "noise")] public double? Noise { get; init; }

    /// <summary>SmoothGrad: RNG seed, for a reproducible map (default: random, reported in JSON).</summary>
    [FromQuery(Name = "seed")] public int? Seed { get; init; }

    /// <summary>SmoothGrad: the method it smooths, any other method (default gradient); its own parameters apply.</summary>
    [FromQuery(Name = "base")] public string? Base { get; init; }

    /// <summary>png (default), json or npy (the raw map: model-input shape and layout; [H, W] for grad-cam).</summary>
    [FromQuery(Name = "format")] public string? Format { get; init; }

    /// <summary>PNG view: heatmap, overlay, rgb, gray. Defaults: rgb for guided-backprop, deconvnet and guided-grad-cam; overlay for grad-cam; heatmap otherwise.</summary>
    [FromQuery(Name = "view")] public string? View { get; init; }

    /// <summary>jet, viridis, inferno, gray, bwr (default inferno; jet for grad-cam; bwr for sign=diverging).</summary>
    [FromQuery(Name = "colormap")] public string? Colormap { get; init; }

    /// <summary>absolute (default), positive, negative, diverging (positive for grad-cam).</summary>
    [FromQuery(Name = "sign")] public string? Sign { get; init; }

    /// <summary>Percentile of |value| that saturates the colormap (default 99.5; 100 for grad-cam).</summary>
    [FromQuery(Name = "clip")] public double? Clip { get; init; }

    /// <summary>Overlay: weight of the heatmap over the image (default 0.5).</summary>
    [FromQuery(Name = "alpha")] public double? Alpha { get; init; }

    /// <summary>The explanation asked for; an unknown method is an <see cref="InvalidArgumentException"/>.</summary>
    public ExplainRequest ToRequest() =>
        new(AttributionMethods.Parse(Method), Target, Steps ?? 50, Samples ?? 25, Noise ?? 0.15, Seed,
            Base is null ? null : AttributionMethods.Parse(Base), Layer);

    /// <summary>png, json or npy; anything else is an <see cref="InvalidArgumentException"/>.</summary>
    public string OutputFormat() =>
        Formats.FirstOrDefault(f => f.Equals(Format ?? "png", StringComparison.OrdinalIgnoreCase))
        ?? throw new InvalidArgumentException($"Unknown format '{Format}'; use one of: {string.Join(", ", Formats)}.");

    /// <summary>The drawing options over the method's defaults.</summary>
    public RenderOptions Rendering(AttributionMethod method) => RenderOptions.Resolve(method, View, Colormap, Sign, Clip, Alpha);
}
