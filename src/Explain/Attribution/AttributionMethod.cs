namespace SaliencyService.Explain.Attribution;

/// <summary>The attribution methods, by their names in the HTTP contract.</summary>
public enum AttributionMethod
{
    GuidedBackprop,
    Gradient,
    Deconvnet,
}

public static class AttributionMethods
{
    private static readonly Dictionary<string, AttributionMethod> ByName = new(StringComparer.OrdinalIgnoreCase)
    {
        ["guided-backprop"] = AttributionMethod.GuidedBackprop,
        ["gradient"] = AttributionMethod.Gradient,
        ["deconvnet"] = AttributionMethod.Deconvnet,
    };

    public static IEnumerable<string> Names => ByName.Keys;

    public static string Name(this AttributionMethod method) => ByName.First(p => p.Value == method).Key;

    /// <summary>Parses a method name; an unknown one is a 400 listing the valid names.</summary>
    public static AttributionMethod Parse(string? name) =>
        name is null ? AttributionMethod.GuidedBackprop
        : ByName.TryGetValue(name, out var method) ? method
        : throw ProblemException.BadRequest($"Unknown method '{name}'; use one of: {string.Join(", ", Names)}.");
}
