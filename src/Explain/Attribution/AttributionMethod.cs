namespace SaliencyService.Explain.Attribution;

/// <summary>The attribution methods, by their names in the HTTP contract.</summary>
public enum AttributionMethod
{
    GuidedBackprop,
    Gradient,
    Deconvnet,
    InputXGradient,
    IntegratedGradients,
    SmoothGrad,
    GradCam,
    GuidedGradCam,
}

public static class AttributionMethods
{
    private static readonly Dictionary<string, AttributionMethod> ByName = new(StringComparer.OrdinalIgnoreCase)
    {
        ["guided-backprop"] = AttributionMethod.GuidedBackprop,
        ["gradient"] = AttributionMethod.Gradient,
        ["deconvnet"] = AttributionMethod.Deconvnet,
        ["input-x-gradient"] = AttributionMethod.InputXGradient,
        ["integrated-gradients"] = AttributionMethod.IntegratedGradients,
        ["smoothgrad"] = AttributionMethod.SmoothGrad,
        ["grad-cam"] = AttributionMethod.GradCam,
        ["guided-grad-cam"] = AttributionMethod.GuidedGradCam,
    };

    public static IEnumerable<string> Names => ByName.Keys;

    public static string Name(this AttributionMethod method) => ByName.First(p => p.Value == method).Key;

    /// <summary>Class-activation maps are [H, W]; every other method has the model-input shape.</summary>
    public static bool IsCam(this AttributionMethod method) => method == AttributionMethod.GradCam;

    /// <summary>Parses a method name; an unknown one is a 400 listing the valid names.</summary>
    public static AttributionMethod Parse(string? name, AttributionMethod fallback = AttributionMethod.GuidedBackprop) =>
        name is null ? fallback
        : ByName.TryGetValue(name, out var method) ? method
        : throw ProblemException.BadRequest($"Unknown method '{name}'; use one of: {string.Join(", ", Names)}.");
}
