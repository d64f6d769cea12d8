using System.Reflection;

namespace SaliencyService.Explain.Mirror;

/// <summary>Every converter and backward rule of the <c>SaliencyService.Explain.Ops</c> namespace, by op type (and opset).</summary>
public static class OpRegistry
{
    private static readonly Dictionary<string, SortedList<int, Func<OpContext, OpKernel>>> Converters = Discover();
    private static readonly Dictionary<string, Func<OpContext, GradientRule?>> GradientRules = DiscoverGradients();

    /// <summary>The converter for <paramref name="opType"/> at <paramref name="opset"/>, or null.</summary>
    public static Func<OpContext, OpKernel>? Find(string opType, int opset)
    {
        if (!Converters.TryGetValue(opType, out var versions)) return null;
        for (var i = versions.Count - 1; i >= 0; i--)
            if (versions.Keys[i] <= opset) return versions.Values[i];
        return null;
    }

    /// <summary>The node's backward rule, or null when its op has none that fits the node.</summary>
    public static GradientRule? Gradient(OpContext node)
    {
        try
        {
            return GradientRules.TryGetValue(node.OpType, out var rule) ? rule(node) : null;
        }
        catch (UnsupportedOperatorException)
        {
            return null;  // the model is still explained, by libtorch autograd
        }
    }

    /// <summary>The op types that have a backward rule, for documentation and tests.</summary>
    public static IEnumerable<string> GradientOpTypes => GradientRules.Keys;

    /// <summary>(op type, since version) of every registration, for documentation and tests.</summary>
    public static IEnumerable<(string OpType, int SinceVersion)> Registrations =>
        Converters.SelectMany(c => c.Value.Keys.Select(v => (c.Key, v))).OrderBy(r => r.Key).ThenBy(r => r.v);

    private static IEnumerable<MethodInfo> OpMethods() => typeof(OpRegistry).Assembly.GetTypes()
        .Where(t => t.Namespace == "SaliencyService.Explain.Ops")
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static));

    private static Dictionary<string, SortedList<int, Func<OpContext, OpKernel>>> Discover()
    {
        var converters = new Dictionary<string, SortedList<int, Func<OpContext, OpKernel>>>(StringComparer.Ordinal);
        foreach (var method in OpMethods())
        foreach (var registration in method.GetCustomAttributes<OnnxOpAttribute>())
        {
            var convert = method.CreateDelegate<Func<OpContext, OpKernel>>();
            var versions = converters.TryGetValue(registration.OpType, out var v) ? v : converters[registration.OpType] = new SortedList<int, Func<OpContext, OpKernel>>();
            if (!versions.TryAdd(registration.SinceVersion, convert))
                throw new InvalidOperationException($"{registration.OpType} since opset {registration.SinceVersion} is registered twice.");
        }
        return converters;
    }

    private static Dictionary<string, Func<OpContext, GradientRule?>> DiscoverGradients()
    {
        var rules = new Dictionary<string, Func<OpContext, GradientRule?>>(StringComparer.Ordinal);
        foreach (var method in OpMethods())
        foreach (var registration in method.GetCustomAttributes<OnnxGradientAttribute>())
            if (!rules.TryAdd(registration.OpType, method.CreateDelegate<Func<OpContext, GradientRule?>>()))
                throw new InvalidOperationException($"{registration.OpType} has two backward rules.");
        return rules;
    }
}
