using System.Reflection;

namespace SaliencyService.Explain.Mirror;

/// <summary>Every converter of the <c>SaliencyService.Explain.Ops</c> namespace, by op type and opset.</summary>
public static class OpRegistry
{
    private static readonly Dictionary<string, SortedList<int, Func<OpContext, OpKernel>>> Converters = Discover();

    /// <summary>The converter for <paramref name="opType"/> at <paramref name="opset"/>, or null.</summary>
    public static Func<OpContext, OpKernel>? Find(string opType, int opset)
    {
        if (!Converters.TryGetValue(opType, out var versions)) return null;
        for (var i = versions.Count - 1; i >= 0; i--)
            if (versions.Keys[i] <= opset) return versions.Values[i];
        return null;
    }

    /// <summary>(op type, since version) of every registration, for documentation and tests.</summary>
    public static IEnumerable<(string OpType, int SinceVersion)> Registrations =>
        Converters.SelectMany(c => c.Value.Keys.Select(v => (c.Key, v))).OrderBy(r => r.Key).ThenBy(r => r.v);

    private static Dictionary<string, SortedList<int, Func<OpContext, OpKernel>>> Discover()
    {
        var converters = new Dictionary<string, SortedList<int, Func<OpContext, OpKernel>>>(StringComparer.Ordinal);
        var methods = typeof(OpRegistry).Assembly.GetTypes()
            .Where(t => t.Namespace == "SaliencyService.Explain.Ops")
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static));
        foreach (var method in methods)
        foreach (var registration in method.GetCustomAttributes<OnnxOpAttribute>())
        {
            var convert = method.CreateDelegate<Func<OpContext, OpKernel>>();
            var versions = converters.TryGetValue(registration.OpType, out var v) ? v : converters[registration.OpType] = new SortedList<int, Func<OpContext, OpKernel>>();
            if (!versions.TryAdd(registration.SinceVersion, convert))
                throw new InvalidOperationException($"{registration.OpType} since opset {registration.SinceVersion} is registered twice.");
        }
        return converters;
    }
}
