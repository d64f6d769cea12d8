using System.Text.Json;
using System.Text.Json.Serialization;

namespace SaliencyService.Tests.Support;

/// <summary>One case of <c>Fixtures/cases.json</c>, computed by PyTorch on the exported models.</summary>
public sealed record ReferenceCase(
    [property: JsonPropertyName("dir")] string Model,
    [property: JsonPropertyName("stem")] string Stem,
    [property: JsonPropertyName("target")] int Target,
    [property: JsonPropertyName("logits")] float[] Logits,
    [property: JsonPropertyName("outputs")] float[] Outputs,
    [property: JsonPropertyName("score")] double Score,
    [property: JsonPropertyName("baseline_score")] double BaselineScore)
{
    public override string ToString() => $"{Model}/{Stem}";
}

public static class ReferenceCases
{
    public static IReadOnlyList<ReferenceCase> All { get; } =
        JsonSerializer.Deserialize<ReferenceCase[]>(File.ReadAllText(Path.Combine(TestPaths.Fixtures, "cases.json")))!;

    public static IEnumerable<object[]> AsTheoryData() => All.Select(c => new object[] { c.Model, c.Stem });

    public static ReferenceCase Get(string model, string stem) => All.Single(c => c.Model == model && c.Stem == stem);
}
