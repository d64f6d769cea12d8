using System.Text.Json;
using System.Text.Json.Nodes;
using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// Identifies one published version of a model folder. Written into <c>model.json</c> beside the
/// manifest before the publish rename, so every replica reads the same identity the moment the
/// folder appears: a new <see cref="Generation"/> is a replace, and the SHA-256 is computed once,
/// at import. <see cref="Number"/> is the version as Triton's clients name it: 1 for a name's first
/// import, one more for each replace of it.
/// </summary>
public sealed record ModelVersion(string Generation, string? Sha256, long Number = 1)
{
    private const string GenerationField = "generation";
    private const string Sha256Field = "sha256";
    private const string NumberField = "versionNumber";

    /// <summary>A new version of a staged model file, following <paramref name="previous"/> (null: none is published).</summary>
    public static ModelVersion New(string sha256, ModelVersion? previous) =>
        new(Guid.NewGuid().ToString("N"), sha256, previous is null ? 1 : previous.Number + 1);

    /// <summary>What <c>/v2</c> calls this version: its number.</summary>
    public string Name => Number.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Whether a client's version names this one: its number, or its generation (what <c>/v2</c>
    /// reported before versions were numbered). Concurrent replaces of one name can share a number
    /// (each counts from the version it found); the one published last is served.
    /// </summary>
    public bool IsNamed(string version) => version == Name || version == Generation;

    /// <summary>Writes <c>model.json</c>: the manifest and this version's identity.</summary>
    public async Task WriteAsync(string directory, ModelManifest manifest, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.SerializeToNode(manifest, ModelInspection.Json)!.AsObject();
        json[GenerationField] = Generation;
        json[Sha256Field] = Sha256;
        json[NumberField] = Number;
        await StagedJson.WriteAsync(Path.Combine(directory, StoreLayout.ManifestFile), json, cancellationToken);
    }

    /// <summary>
    /// The version in a model folder; null while it cannot be read (a folder being removed).
    /// Folders written before versions existed, or by hand, are identified by their model file's
    /// size and time; folders written before versions were numbered are number 1.
    /// </summary>
    public static ModelVersion? Read(string directory)
    {
        try
        {
            if (FromManifest(Path.Combine(directory, StoreLayout.ManifestFile)) is { } written) return written;
            var model = new FileInfo(Path.Combine(directory, StoreLayout.ModelFile));
            return model.Exists ? new ModelVersion($"file-{model.Length}-{model.LastWriteTimeUtc.Ticks}", null) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static ModelVersion? FromManifest(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(GenerationField, out var generation) || generation.ValueKind != JsonValueKind.String)
                return null;
            var sha256 = root.TryGetProperty(Sha256Field, out var sha) && sha.ValueKind == JsonValueKind.String ? sha.GetString() : null;
            var number = root.TryGetProperty(NumberField, out var n) && n.ValueKind == JsonValueKind.Number && n.TryGetInt64(out var value) && value > 0 ? value : 1;
            return new ModelVersion(generation.GetString()!, sha256, number);
        }
        catch (JsonException)
        {
            return null; // a manifest written by hand; its load reports what is wrong with it
        }
    }
}
