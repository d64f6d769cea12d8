using System.Globalization;
using SaliencyService.Explain.Rendering;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// One attribution method, as Captum's <c>Attribution</c>: its name in the contract, the request
/// parameters it reads and checks, how its maps are drawn by default, and the maps themselves,
/// computed on the model's gradient engine through <see cref="ExplainContext"/>. Every concrete
/// subclass is found by <see cref="AttributionMethods"/>: adding a method is adding one class.
/// </summary>
public abstract class AttributionMethod
{
    /// <summary>The name in the contract (<c>method=</c>).</summary>
    public abstract string Name { get; }

    /// <summary>Position in the lists shown to people (Swagger, the page).</summary>
    public abstract int Order { get; }

    /// <summary>Class-activation maps are [H, W]; every other method's map has the model-input shape.</summary>
    public virtual bool IsCam => false;

    /// <summary>How the map is drawn unless the request says otherwise.</summary>
    public virtual RenderOptions RenderDefaults => RenderOptions.Heatmap;

    /// <summary>The request parameters the maps depend on (beyond the target): part of the cache key.</summary>
    public virtual IReadOnlyList<MethodParameter> Parameters => [];

    /// <summary>Refuses parameters out of range (<see cref="InvalidArgumentException"/>), before any work is queued.</summary>
    public virtual void Validate(ExplainRequest request)
    {
    }

    /// <summary>What identifies the map a request gives on one model and input, or null when the map is random.</summary>
    public virtual string? CacheKey(ExplainRequest request) =>
        string.Join('|', [Name, request.Target, .. Parameters.Select(p => Format(p.Value(request)))]);

    /// <summary>
    /// The maps for every sample of <paramref name="inputs"/> ([n, ...], n ≥ 1), explaining the
    /// context's target; [n, ...] in the input's shape, or [n, H, W] for class-activation maps.
    /// </summary>
    public abstract Attributions Attribute(ExplainContext context, Tensor inputs);

    /// <summary>
    /// The sum of the maps of every sample of <paramref name="inputs"/> ([1, ...]): all that
    /// SmoothGrad's mean needs, which a method whose maps are gradients computes in less work.
    /// </summary>
    public virtual Attributions SummedAttribute(ExplainContext context, Tensor inputs)
    {
        var attributions = Attribute(context, inputs);
        return attributions with { Maps = attributions.Maps.sum([0], keepdim: true) };
    }

    public override string ToString() => Name;

    private static string? Format(object? value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value?.ToString(),
    };
}

/// <summary>A request parameter a method reads: its contract name and its value in a request.</summary>
public sealed record MethodParameter(string Name, Func<ExplainRequest, object?> Value);

/// <summary>A method's maps, [n, ...], and the parameters as they were used (reported in the JSON answer).</summary>
public sealed record Attributions(Tensor Maps, IReadOnlyDictionary<string, object> Parameters)
{
    public Attributions(Tensor maps) : this(maps, new Dictionary<string, object>())
    {
    }
}
