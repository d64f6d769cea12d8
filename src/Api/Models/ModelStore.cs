using SaliencyService.Api.Errors;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// The served models: loaded from the repository at start-up, changed through validated, atomic
/// imports and deletes, and kept in step with the folder by <see cref="SyncAsync"/> when other
/// replicas share it (Triton's poll mode). Reads are lock-free; changes are serialised.
/// </summary>
public sealed class ModelStore(StoreLayout layout, ModelLoader loader, ILogger<ModelStore> logger) : IDisposable
{
    private readonly ConcurrentDictionary<string, ServedModel> _models = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (ModelVersion Version, string Reason)> _failed = new(StringComparer.Ordinal);
    private readonly HashSet<string> _missingOnce = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _writes = new(1, 1);
    private volatile bool _loaded;

    public StoreLayout Layout { get; } = layout;

    /// <summary>True once every model folder has been loaded (readiness).</summary>
    public bool IsLoaded => _loaded;

    /// <summary>Changes picked up from the folder (other replicas' imports, replaces, deletes) and failed loads, by kind.</summary>
    public IReadOnlyDictionary<string, long> SyncEvents => _syncEvents;

    private readonly ConcurrentDictionary<string, long> _syncEvents = new(StringComparer.Ordinal);

    /// <summary>Model folders that failed to load here, with the reason (until a new version of them loads).</summary>
    public IReadOnlyDictionary<string, string> Failed => _failed.ToDictionary(f => f.Key, f => f.Value.Reason, StringComparer.Ordinal);

    /// <summary>Recovers from any interrupted change, then loads every model folder.</summary>
    public void Load()
    {
        if (Layout.ReadOnly) logger.LogInformation("Model store {Root} is read-only ({Reason}): served as given", Layout.Root, Layout.ReadOnlyBecause);
        else Layout.Recover();
        foreach (var name in Layout.ModelFolders())
        {
            if (!ModelNames.IsValid(name))
            {
                logger.LogWarning("Skipping folder {Folder}: not a valid model name", name);
                continue;
            }
            // A read-only store's models were never checked here (KServe's storage): each is checked in a child, like an upload.
            if (TryOpen(name, ModelVersion.Read(Layout.ModelDirectory(name)), untrusted: Layout.ReadOnly) is not { } model) continue;
            _models[name] = model;
            logger.LogInformation("Loaded model {Model} ({Bytes} bytes, {Provider}; gradients: {Engine})", name, model.Descriptor.SizeBytes,
                model.Descriptor.ExecutionProvider, GradientsOf(model.Descriptor));
        }
        _loaded = true;
    }

    /// <summary>
    /// Brings the served models in line with the folder: loads new folders and new versions (a
    /// request in flight keeps the version it leased), drops folders that are gone. A folder
    /// missing once is kept until the next pass, since a replace on another replica is two
    /// renames with no folder between them. A folder appears only by its publish rename, so it is
    /// never seen half-written.
    /// </summary>
    public async Task SyncAsync(CancellationToken cancellationToken = default)
    {
        var onDisk = new Dictionary<string, ModelVersion?>(StringComparer.Ordinal);
        foreach (var name in Layout.ModelFolders().Where(ModelNames.IsValid))
            onDisk[name] = ModelVersion.Read(Layout.ModelDirectory(name));

        foreach (var (name, version) in onDisk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (version is null) continue; // being removed or replaced right now: the next pass sees what follows
            if (_models.TryGetValue(name, out var served) && served.Version == version) continue;
            if (_failed.TryGetValue(name, out var failed) && failed.Version == version) continue;
            await LoadVersionAsync(name, version);
        }

        foreach (var name in _failed.Keys.Where(n => !onDisk.ContainsKey(n))) _failed.TryRemove(name, out _);
        await _writes.WaitAsync(CancellationToken.None);
        try
        {
            _missingOnce.RemoveWhere(n => onDisk.ContainsKey(n) || !_models.ContainsKey(n));
            foreach (var name in _models.Keys.Where(n => !onDisk.ContainsKey(n)).ToArray())
            {
                if (_missingOnce.Add(name) || Directory.Exists(Layout.ModelDirectory(name))) continue;
                _missingOnce.Remove(name);
                if (!_models.TryGetValue(name, out var model)) continue;
                Count("delete"); // before it goes, as above
                _models.TryRemove(name, out _);
                model.Retire();
                logger.LogInformation("Dropped model {Model}: removed from the store", name);
            }
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Loads the version in <paramref name="name"/>'s folder and serves it, unless this replica changed
    /// the model meanwhile or yet another version landed. One that fails to load is remembered in
    /// <see cref="Failed"/>.
    /// </summary>
    private async Task LoadVersionAsync(string name, ModelVersion version)
    {
        // Built as the importer's stored verdict says; without one, checked in a child like an upload.
        if (TryOpen(name, version, untrusted: true) is not { } model) return;
        await _writes.WaitAsync(CancellationToken.None);
        try
        {
            _models.TryGetValue(name, out var current);
            if (current?.Version == model.Version || ModelVersion.Read(Layout.ModelDirectory(name)) != model.Version)
            {
                model.Retire(); // this replica changed it meanwhile, or yet another version landed
                return;
            }
            // Counted before the change shows: whoever sees it sees it counted.
            Count(current is null ? "import" : "replace");
            _models[name] = model;
            current?.Retire();
            logger.LogInformation("{Action} model {Model} from the store (sha256 {Sha}; gradients: {Engine})", current is null ? "Loaded new" : "Reloaded changed",
                name, model.Descriptor.Sha256, GradientsOf(model.Descriptor));
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Loads a model's folder now rather than at the next poll (Triton's repository load): a version
    /// another replica published, or the same version again after it failed to load here.
    /// </summary>
    /// <exception cref="ProblemException">400 when the store has no such folder, or its version fails to load.</exception>
    public async Task LoadAsync(string name)
    {
        if (!ModelNames.IsValid(name) || ModelVersion.Read(Layout.ModelDirectory(name)) is not { } version)
            throw ProblemException.BadRequest($"No model named '{name}' is in the store.");
        if (_models.TryGetValue(name, out var served) && served.Version == version) return;
        _failed.TryRemove(name, out _);
        await LoadVersionAsync(name, version);
        if (_failed.TryGetValue(name, out var failed) && failed.Version == version)
            throw ProblemException.BadRequest($"Model '{name}' failed to load: {failed.Reason}");
    }

    /// <summary>Every version this replica knows of: those it serves, and those that failed to load here, with the reason.</summary>
    public IReadOnlyList<(string Name, ModelVersion Version, string? Reason)> Index() =>
        _models.Select(m => (m.Key, m.Value.Version, (string?)null))
            .Concat(_failed.Select(f => (f.Key, f.Value.Version, (string?)f.Value.Reason)))
            .OrderBy(e => e.Item1, StringComparer.Ordinal).ThenBy(e => e.Version.Number).ToArray();

    private int _importsBegun;

    /// <summary>How many imports have begun (the demos' seeding included) since this process started.</summary>
    public int ImportsBegun => Volatile.Read(ref _importsBegun);

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
    /// <param name="sha256">The file's SHA-256 where its upload hashed it on the way in; hashed here otherwise.</param>
    /// <returns>The new version's descriptor.</returns>
    public async Task<ModelDescriptor> ImportAsync(
        string stagingDirectory, string name, string? manifestJson, bool replace, CancellationToken cancellationToken, string? sha256 = null)
    {
        Interlocked.Increment(ref _importsBegun);
        EnsureWritable();
        ModelNames.Validate(name);
        if (!replace && Directory.Exists(Layout.ModelDirectory(name)))
            throw ConflictFor(name); // early and cheap; the publish rename decides

        var model = await StageAsync(stagingDirectory, name, manifestJson, cancellationToken, sha256); // outside the write lock
        var published = false;
        await _writes.WaitAsync(CancellationToken.None);
        try
        {
            var exists = Directory.Exists(Layout.ModelDirectory(name));
            if (exists && !replace) throw ConflictFor(name);
            if (exists) Layout.Replace(stagingDirectory, name);
            else if (!Layout.TryPublish(stagingDirectory, name))
            {
                if (!replace) throw ConflictFor(name); // another replica published the name first
                Layout.Replace(stagingDirectory, name);
            }
            published = true;

            _models.TryGetValue(name, out var previous);
            _models[name] = model;
            _failed.TryRemove(name, out _);
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

    /// <summary>
    /// What an import does before it publishes: the staged upload's version and verdict written beside
    /// it, the model checked and loaded. The caller publishes the folder or retires the model.
    /// </summary>
    public async Task<ServedModel> StageAsync(string stagingDirectory, string name, string? manifestJson, CancellationToken cancellationToken, string? sha256 = null)
    {
        var manifest = ModelInspection.ParseManifest(manifestJson);
        var modelFile = Path.Combine(stagingDirectory, StoreLayout.ModelFile);
        File.SetLastWriteTimeUtc(modelFile, DateTime.UtcNow); // = importedAt
        var version = ModelVersion.New(sha256 ?? await Sha256Async(modelFile, cancellationToken), ModelVersion.Read(Layout.ModelDirectory(name)));
        await version.WriteAsync(stagingDirectory, manifest, cancellationToken);
        // Each staged file is on disk before the publish rename makes the folder visible. They are
        // flushed while the model is checked, not before, and after the last write before it: a 46 MB
        // model's fsync took ~35 ms, and a small file's write or fsync behind it waited for it.
        var written = FlushToDiskAsync(modelFile, Path.Combine(stagingDirectory, StoreLayout.ManifestFile));
        var model = loader.Open(stagingDirectory, name, untrusted: true, version); // as written: not read back
        try
        {
            await StoredVerdict.WriteAsync(stagingDirectory, model.Descriptor.Sha256, new(model.Descriptor.Explain, model.Onnx.GraphOptimization), cancellationToken);
            await written;
            await FlushToDiskAsync(Path.Combine(stagingDirectory, StoredVerdict.File));
            return model;
        }
        catch
        {
            model.Retire();
            throw;
        }
    }

    private static Task FlushToDiskAsync(params string[] paths) => Task.Run(() =>
    {
        foreach (var path in paths)
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            file.Flush(flushToDisk: true);
        }
    }, CancellationToken.None);

    /// <summary>Deletes a model; requests already running on it finish first.</summary>
    public async Task DeleteAsync(string name)
    {
        EnsureWritable();
        await _writes.WaitAsync();
        try
        {
            var served = _models.TryRemove(name, out var model);
            var removed = ModelNames.IsValid(name) && Layout.Remove(name);
            _failed.TryRemove(name, out _);
            if (!served && !removed) throw ProblemException.NotFound($"No model named '{name}'.");
            model?.Retire();
            logger.LogInformation("Deleted model {Model}", name);
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>Refuses changes to a read-only store (403).</summary>
    public void EnsureWritable()
    {
        if (Layout.ReadOnly)
            throw new ProblemException(StatusCodes.Status403Forbidden, "Read-only model repository",
                $"The model repository {Layout.Root} is read-only ({Layout.ReadOnlyBecause}): its models are served as given and cannot be imported, replaced or deleted here.");
    }

    public void Dispose()
    {
        foreach (var model in _models.Values) model.Retire();
        _models.Clear();
        _writes.Dispose();
    }

    /// <summary>
    /// Loads a model folder; a failure is logged, remembered for that version, and counted, never
    /// thrown. A load whose folder another replica replaced or removed meanwhile failed on files
    /// that went away, not on that version: nothing is remembered, and the next pass takes what
    /// follows.
    /// </summary>
    /// <param name="untrusted">As for <see cref="ModelLoader.Open"/>.</param>
    /// <param name="version">The folder's version, read before the load.</param>
    private ServedModel? TryOpen(string name, ModelVersion? version, bool untrusted)
    {
        try
        {
            return loader.Open(Layout.ModelDirectory(name), name, untrusted, version);
        }
        catch (Exception e) when (e is ProblemException or ClientInputException or IOException or UnauthorizedAccessException)
        {
            if (version is not null && ModelVersion.Read(Layout.ModelDirectory(name)) != version)
            {
                logger.LogInformation("Model folder {Model} changed while it loaded; the next pass loads what is there then", name);
                return null;
            }
            if (version is not null) _failed[name] = (version, e.Message);
            Count("failure");
            logger.LogError("Model folder {Model} is not served: {Reason}", name, e.Message);
            return null;
        }
    }

    /// <summary>Counts one sync event of <paramref name="kind"/> (see <see cref="SyncEvents"/>).</summary>
    public void Count(string kind) => _syncEvents.AddOrUpdate(kind, 1, (_, count) => count + 1);

    private static string GradientsOf(ModelDescriptor descriptor) =>
        descriptor.Explain.GradientEngine is { } engine ? $"{engine}, {descriptor.Explain.GradientEngineReason}" : "not explainable: " + descriptor.Explain.Reason;

    private ServedModel Find(string name)
    {
        if (_models.TryGetValue(name, out var model)) return model;
        if (_failed.TryGetValue(name, out var failed))
            throw new ProblemException(503, "Model not loaded", $"Model '{name}' is in the store but failed to load on this replica: {failed.Reason}");
        throw ProblemException.NotFound($"No model named '{name}'.");
    }

    private static ProblemException ConflictFor(string name) =>
        ProblemException.Conflict($"A model named '{name}' exists; add ?replace=true to replace it.");

    private static async Task<string> Sha256Async(string path, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
    }
}
