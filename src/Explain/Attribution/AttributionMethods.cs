namespace SaliencyService.Explain.Attribution;

/// <summary>The registry: every <see cref="AttributionMethod"/> of this assembly, by its contract name.</summary>
public static class AttributionMethods
{
    public static IReadOnlyList<AttributionMethod> All { get; } = typeof(AttributionMethod).Assembly.GetTypes()
        .Where(t => t is { IsAbstract: false } && t.IsSubclassOf(typeof(AttributionMethod)) && t.GetConstructor(Type.EmptyTypes) is not null)
        .Select(t => (AttributionMethod)Activator.CreateInstance(t)!)
        .OrderBy(m => m.Order)
        .ToArray();

    private static readonly Dictionary<string, AttributionMethod> ByName = All.ToDictionary(m => m.Name, StringComparer.OrdinalIgnoreCase);

    public static IEnumerable<string> Names => All.Select(m => m.Name);

    /// <summary>The method when a request names none.</summary>
    public static AttributionMethod Default => Get(Methods.GuidedBackprop.MethodName);

    public static AttributionMethod Get(string name) => ByName[name];

    /// <summary>Parses a method name; an unknown one is an <see cref="InvalidArgumentException"/> listing the valid names.</summary>
    public static AttributionMethod Parse(string? name, AttributionMethod? fallback = null) =>
        name is null ? fallback ?? Default
        : ByName.TryGetValue(name, out var method) ? method
        : throw new InvalidArgumentException($"Unknown method '{name}'; use one of: {string.Join(", ", Names)}.");
}
