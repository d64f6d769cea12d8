using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// The import's explain verdict (<see cref="ExplainDescriptor"/>: parity, layers, gradient engine)
/// and the graph optimizations the model's session takes (<see cref="ImportCheck"/>), kept in the
/// model folder as <c>explain.json</c> so that other replicas, and later start-ups, build the model
/// as it says instead of probing it again. Written into the staging folder before the publish
/// rename; tied to the model file by its SHA-256.
/// </summary>
public static class StoredVerdict
{
    public const string File = "explain.json";

    /// <param name="GraphOptimization">ONNX Runtime's graph optimizations for the served session; null (a verdict written before they were kept): all.</param>
    private sealed record Stored(string Sha256, ExplainDescriptor Explain,
        [property: JsonConverter(typeof(JsonStringEnumConverter<GraphOptimizationLevel>))] GraphOptimizationLevel? GraphOptimization = null);

    /// <summary>What the import decided: its explain verdict, and the graph optimizations the model's session takes.</summary>
    public sealed record Verdict(ExplainDescriptor Explain, GraphOptimizationLevel GraphOptimization);

    public static async Task WriteAsync(string directory, string sha256, Verdict verdict, CancellationToken cancellationToken)
    {
        await StagedJson.WriteAsync(Path.Combine(directory, File), new Stored(sha256, verdict.Explain, verdict.GraphOptimization), cancellationToken);
    }

    /// <summary>
    /// The verdict for this version's model file, or null: none written, another file's, or one
    /// that this replica's settings would not have reached (ONNX Runtime's backward turned off here).
    /// </summary>
    public static Verdict? Read(string directory, ModelVersion version, ExplainOptions options)
    {
        try
        {
            var path = Path.Combine(directory, File);
            if (version.Sha256 is null || !System.IO.File.Exists(path)) return null;
            var stored = JsonSerializer.Deserialize<Stored>(System.IO.File.ReadAllBytes(path), ModelInspection.Json);
            if (stored?.Explain is not { } explain || stored.Sha256 != version.Sha256) return null;
            return explain.GradientEngine == GradientEngines.OnnxRuntime && !options.OrtBackward
                ? null
                : new Verdict(explain, stored.GraphOptimization ?? GraphOptimizationLevel.ORT_ENABLE_ALL);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }
}
