using System.Collections.Concurrent;
using System.Text.Json;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// The served models: loaded from the repository at start-up, changed only through validated,
/// atomic imports and deletes. Reads are lock-free; writes are serialised.
/// </summary>
public sealed class ModelStore(StoreLayout layout, ModelLoader loader, ILogger<ModelStore> logger) : IDisposable
{
    private readonly ConcurrentDictionary<string, ServedModel> _models = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _writes = new(1, 1);
    private volatile bool _loaded;

    public StoreLayout Layout { get; } = layout;

    /// <summary>True once every model folder has been loaded (readiness).</summary>
    public bool IsLoaded => _loaded;

    /// <summary>Recovers from any interrupted change, then loads every model folder.</summary>
    public void Load()
    {
        Layout.Recover();
        foreach (var name in Layout.ModelFolders())
        {
            if (!ModelNames.IsValid(name))
            {
                logger.LogWarning("Skipping folder {Folder}: not a valid model name", name);
                continue;
            }
            try
            {
                var model = loader.Open(Layout.ModelDirectory(name), name);
                _models[name] = model;
                logger.LogInformation("Loaded model {Model} ({Bytes} bytes, {Provider}; gradients: {Engine})", name, model.Descriptor.SizeBytes,
                    model.Descriptor.ExecutionProvider, GradientsOf(model.Descriptor));
            }
            catch (Exception e) when (e is ProblemException or IOException or UnauthorizedAccessException)
            {
                logger.LogError("Model folder {Model} is not served: {Reason}", name, e.Message);
            }
        }
        _loaded = true;
    }

    public bool IsEmpty => _models.IsEmpty && !Layout.ModelFolders().Any();

    public IReadOnlyList<ModelDescriptor> List() =>
        _models.Values.Select(m => m.Descriptor).OrderBy(d => d.Name, StringComparer.Ordinal).ToArray();

    public ModelDescriptor Get(string name) => Find(name).Descriptor;

    /// <summary>Holds the current version of a model for the length of one request.</summary>
    public ModelLease Lease(string name)
    {
        while (true)
        {
            var model = Find(name);
            if (model.TryAcquire()) return new ModelLease(model);
            // Retired between the lookup and the lease: the dictionary already has its successor.
        }
    }

    /// <summary>
    /// Validates the model staged in <paramref name="stagingDirectory"/> (<c>model.onnx</c>), then
    /// moves it into place under <paramref name="name"/>. Nothing reaches the store unless it loads.
    /// </summary>
    /// <returns>The new version's descriptor.</returns>
    public async Task<ModelDescriptor> ImportAsync(
        string stagingDirectory, string name, string? manifestJson, bool replace, CancellationToken cancellationToken)
    {
        ModelNames.Validate(name);
        if (!replace && Directory.Exists(Layout.ModelDirectory(name)))
            throw ConflictFor(name); // early and cheap; checked again under the write lock

        var manifest = ModelInspection.ParseManifest(manifestJson);
        File.SetLastWriteTimeUtc(Path.Combine(stagingDirectory, StoreLayout.ModelFile), DateTime.UtcNow); // = importedAt
        await WriteManifestAsync(stagingDirectory, manifest, cancellationToken);
        var model = loader.Open(stagingDirectory, name, untrusted: true); // validation happens outside the write lock

        var published = false;
        await _writes.WaitAsync(CancellationToken.None);
        try
        {
            var exists = Directory.Exists(Layout.ModelDirectory(name));
            if (exists && !replace) throw ConflictFor(name);
            if (exists) Layout.Replace(stagingDirectory, name);
            else Layout.Publish(stagingDirectory, name);
            published = true;

            _models.TryGetValue(name, out var previous);
            _models[name] = model;
            previous?.Retire();
            logger.LogInformation("{Action} model {Model} (sha256 {Sha}; gradients: {Engine})", exists ? "Replaced" : "Imported", name,
                model.Descriptor.Sha256, GradientsOf(model.Descriptor));
            return model.Descriptor;
        }
        finally
        {
            _writes.Release();
            if (!published) model.Retire();
        }
    }

    /// <summary>Deletes a model; requests already running on it finish first.</summary>
    public async Task DeleteAsync(string name)
    {
        await _writes.WaitAsync();
        try
        {
            var served = _models.TryRemove(name, out var model);
            if (!ModelNames.IsValid(name) || !Directory.Exists(Layout.ModelDirectory(name)))
            {
                if (!served) throw ProblemException.NotFound($"No model named '{name}'.");
            }
            else Layout.Remove(name);
            model?.Retire();
            logger.LogInformation("Deleted model {Model}", name);
        }
        finally
        {
            _writes.Release();
        }
    }

    public void Dispose()
    {
        foreach (var model in _models.Values) model.Retire();
        _models.Clear();
        _writes.Dispose();
    }

    private static string GradientsOf(ModelDescriptor descriptor) =>
        descriptor.Explain.GradientEngine is { } engine ? $"{engine}, {descriptor.Explain.GradientEngineReason}" : "not explainable: " + descriptor.Explain.Reason;

    private ServedModel Find(string name) =>
        _models.TryGetValue(name, out var model) ? model : throw ProblemException.NotFound($"No model named '{name}'.");

    private static ProblemException ConflictFor(string name) =>
        ProblemException.Conflict($"A model named '{name}' exists; add ?replace=true to replace it.");

    private static async Task WriteManifestAsync(string directory, ModelManifest manifest, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(Path.Combine(directory, StoreLayout.ManifestFile), FileMode.Create, FileAccess.Write);
        await JsonSerializer.SerializeAsync(file, manifest, ModelInspection.Json, cancellationToken);
        await file.FlushAsync(cancellationToken);
        file.Flush(flushToDisk: true);
    }
}
