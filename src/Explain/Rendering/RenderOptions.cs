using SaliencyService.Explain.Attribution;

namespace SaliencyService.Explain.Rendering;

/// <summary>
/// How a map is drawn. View: <c>heatmap</c> (colormap of the normalised magnitude), <c>overlay</c>
/// (heatmap blended over the input image with <see cref="Alpha"/>), <c>rgb</c> (the classic
/// guided-backprop picture: per-image standardised values around mid-grey), <c>gray</c>.
/// Sign: <c>absolute</c>, <c>positive</c>, <c>negative</c>, <c>diverging</c> (signed, on a
/// blue–white–red scale unless a colormap is named). Values beyond the <see cref="ClipPercentile"/>-th
/// percentile of |value| saturate.
/// </summary>
public sealed record RenderOptions(string View, string Colormap, string Sign, double ClipPercentile, double Alpha)
{
    public static readonly string[] Views = ["heatmap", "overlay", "rgb", "gray"];
    public static readonly string[] Signs = ["absolute", "positive", "negative", "diverging"];

    /// <summary>Gradients as a heatmap: the default unless a method says otherwise.</summary>
    public static readonly RenderOptions Heatmap = new("heatmap", "inferno", "absolute", 99.5, 0.5);

    /// <summary>The classic guided-backprop picture (guided backprop, deconvnet, guided Grad-CAM).</summary>
    public static readonly RenderOptions Picture = new("rgb", "gray", "absolute", 99.5, 0.5);

    /// <summary>Class-activation maps over the photo.</summary>
    public static readonly RenderOptions Overlay = new("overlay", "jet", "positive", 100, 0.5);

    /// <summary>The defaults of <paramref name="method"/> overridden by whatever the request names; bad values are a 400.</summary>
    public static RenderOptions Resolve(AttributionMethod method, string? view, string? colormap, string? sign, double? clip, double? alpha)
    {
        var defaults = method.RenderDefaults;
        var resolvedSign = Pick(sign, Signs, "sign") ?? defaults.Sign;
        var resolved = new RenderOptions(
            Pick(view, Views, "view") ?? defaults.View,
            Pick(colormap, Colormaps.Names, "colormap") ?? (resolvedSign == "diverging" ? "bwr" : defaults.Colormap),
            resolvedSign,
            clip ?? defaults.ClipPercentile,
            alpha ?? defaults.Alpha);
        if (resolved.ClipPercentile is <= 0 or > 100 || double.IsNaN(resolved.ClipPercentile))
            throw new InvalidArgumentException("clip is a percentile in (0, 100].");
        if (resolved.Alpha is < 0 or > 1 || double.IsNaN(resolved.Alpha)) throw new InvalidArgumentException("alpha must be between 0 and 1.");
        return resolved;
    }

    private static string? Pick(string? value, IEnumerable<string> allowed, string what) =>
        value is null ? null
        : allowed.FirstOrDefault(a => a.Equals(value, StringComparison.OrdinalIgnoreCase))
          ?? throw new InvalidArgumentException($"Unknown {what} '{value}'; use one of: {string.Join(", ", allowed)}.");
}
