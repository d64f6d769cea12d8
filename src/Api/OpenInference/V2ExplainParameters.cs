using System.Globalization;
using System.Text.Json;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;

namespace SaliencyService.Api.OpenInference;

/// <summary>The explain extension's request parameters: the same names and defaults as /v1's query.</summary>
public static class V2ExplainParameters
{
    public static ExplainRequest Read(IReadOnlyDictionary<string, JsonElement>? parameters)
    {
        string? Text(string name) => parameters?.TryGetValue(name, out var value) != true ? null
            : value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Number => value.GetRawText(),
                JsonValueKind.Null => null,
                _ => throw new InvalidArgumentException($"Parameter '{name}' must be a string or a number."),
            };
        T? Number<T>(string name) where T : struct, IParsable<T> =>
            Text(name) is not { } text ? null
            : T.TryParse(text, CultureInfo.InvariantCulture, out var parsed) ? parsed
            : throw new InvalidArgumentException($"Parameter '{name}' is not a valid {typeof(T).Name.ToLowerInvariant()}: '{text}'.");

        var baseMethod = Text("base");
        return new ExplainRequest(AttributionMethods.Parse(Text("method")), Text("target"), Number<int>("steps") ?? 50,
            Number<int>("samples") ?? 25, Number<double>("noise") ?? 0.15, Number<int>("seed"),
            baseMethod is null ? null : AttributionMethods.Parse(baseMethod), Text("layer"));
    }
}
