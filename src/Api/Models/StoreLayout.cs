using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// The model repository on disk: <c>{root}/{name}/model.onnx</c> + <c>model.json</c>, plus two
/// hidden work folders on the same file system so that every change is a directory rename:
/// <c>.staging</c> (uploads being written and validated) and <c>.trash</c> (versions being removed).
/// A crash at any point leaves either the old or the new version in place; <see cref="Recover"/>
/// finishes or undoes whatever a crash interrupted.
/// Several replicas may share the store (a ReadWriteMany volume). Each process uploads into its own
/// <c>.staging/{owner}/</c>, holding <c>.staging/{owner}/.lock</c> open exclusively while it lives,
/// and names its trash entries after itself; recovery touches only what dead owners left.
/// </summary>
public sealed class StoreLayout : IDisposable
{
    public const string ModelFile = ModelInspection.ModelFile;
    public const string ManifestFile = ModelInspection.ManifestFile;
    private const string Replaced = ".replaced";
    private const string Deleted = ".deleted";
    private const string LockFile = ".lock";
    private const char OwnerSeparator = '~'; // never in a model name

    private readonly string _owner = Guid.NewGuid().ToString("N");
    private FileStream? _lock;
    private readonly Lock _claim = new();

    public StoreLayout(string root, ModelStoreOptions? options = null)
    {
        Root = Path.GetFullPath(root);
        Staging = Path.Combine(Root, ".staging");
        Trash = Path.Combine(Root, ".trash");
        ReadOnlyBecause = options?.ReadOnly == true ? "Saliency:ModelStore:ReadOnly"
            : OnReadOnlyFileSystem(Root) ? "its file system is mounted read-only" : null;
        if (ReadOnly && File.Exists(Path.Combine(Root, ModelFile))) BareModel = ModelNames.Validate(options?.ModelName ?? ModelStoreOptions.DefaultModelName);
    }

    public string Root { get; }

    /// <summary>
    /// Served as given, never written (<see cref="ModelStoreOptions.ReadOnly"/>, or a repository
    /// on a file system mounted read-only, which Triton serves so too).
    /// </summary>
    public bool ReadOnly => ReadOnlyBecause is not null;

    /// <summary>Why the store is read-only, for logs and answers; null where it is written.</summary>
    public string? ReadOnlyBecause { get; }

    /// <summary>The name of the one model whose files lie at the root of a read-only store, if they do.</summary>
    public string? BareModel { get; }
    public string Staging { get; }
    public string Trash { get; }

    private string OwnStaging => Path.Combine(Staging, _owner);

    public string ModelDirectory(string name) => name == BareModel ? Root : Path.Combine(Root, name);

    /// <summary>Names of the model folders (hidden work folders excluded).</summary>
    public IEnumerable<string> ModelFolders() =>
        BareModel is { } bare ? [bare]
        : ReadOnly && !Directory.Exists(Root) ? []
        : Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(n => n is not null && !n.StartsWith('.'))
            .Select(n => n!)
            .Order(StringComparer.Ordinal);

    /// <summary>
    /// Whether <paramref name="root"/> is a folder on a file system mounted read-only (EROFS, found
    /// by creating a file that is deleted as it closes). Other failures to write are left to show
    /// where they happen: a folder the service's user may not write is a mistake to report.
    /// </summary>
    private static bool OnReadOnlyFileSystem(string root)
    {
        if (!Directory.Exists(root)) return false;
        try
        {
            using var probe = new FileStream(Path.Combine(root, $".probe-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.Write, FileShare.None,
                bufferSize: 1, FileOptions.DeleteOnClose);
            return false;
        }
        catch (IOException e) when (e.HResult == ReadOnlyFileSystem)
        {
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private const int ReadOnlyFileSystem = 30; // EROFS: .NET keeps the errno as the HResult on Unix

    /// <summary>
    /// Run once at start-up, before models load: uploads that never committed are dropped; a
    /// replace interrupted between its two renames gets its old version back; trash is emptied —
    /// all of it only where the process that left it is gone (other replicas may be mid-change).
    /// </summary>
    public void Recover()
    {
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Staging);
        Directory.CreateDirectory(Trash);

        foreach (var entry in Directory.EnumerateFileSystemEntries(Staging))
        {
            var owner = Path.GetFileName(entry);
            if (owner != _owner && !OwnerAlive(owner)) DeleteQuietly(entry);
        }
        foreach (var entry in Directory.EnumerateDirectories(Trash))
        {
            var file = Path.GetFileName(entry);
            var reason = file.EndsWith(Replaced, StringComparison.Ordinal) ? Replaced : file.EndsWith(Deleted, StringComparison.Ordinal) ? Deleted : null;
            var stem = reason is null ? file : file[..^reason.Length];             // "{name}.{owner}~{unique}" or "{name}.{unique}"
            var dot = stem.LastIndexOf('.');
            var tag = dot < 0 ? "" : stem[(dot + 1)..];
            var owner = tag.Contains(OwnerSeparator) ? tag[..tag.IndexOf(OwnerSeparator)] : null;
            if (owner is not null && (owner == _owner || OwnerAlive(owner))) continue;
            var name = stem[..Math.Max(0, dot)];
            if (reason == Replaced && ModelNames.IsValid(name) && !Directory.Exists(ModelDirectory(name)))
            {
                try
                {
                    Directory.Move(entry, ModelDirectory(name));
                    continue;
                }
                catch (IOException)
                {
                    // Another replica put a version there first: this one is trash.
                }
            }
            DeleteQuietly(entry);
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a fresh staging folder and removes whatever is left of it
    /// afterwards: nothing once it was published, the partial upload when anything failed.
    /// </summary>
    public async Task<T> WithStagingAsync<T>(Func<string, Task<T>> work)
    {
        var staging = NewStagingDirectory();
        try
        {
            return await work(staging);
        }
        finally
        {
            DeleteQuietly(staging);
        }
    }

    /// <summary>A fresh folder for one upload, in this process's own staging folder.</summary>
    private string NewStagingDirectory()
    {
        ClaimOwnStaging();
        var path = Path.Combine(OwnStaging, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Moves a validated staging folder into place; false when the name was taken meanwhile (another replica).</summary>
    public bool TryPublish(string stagingDirectory, string name)
    {
        try
        {
            Directory.Move(stagingDirectory, ModelDirectory(name));
            return true;
        }
        catch (IOException) when (Directory.Exists(ModelDirectory(name)))
        {
            return false; // the rename is the commit point: whoever renamed first has the name
        }
    }

    /// <summary>
    /// Swaps a model folder for a validated staging folder: two renames, see <see cref="Recover"/>.
    /// A folder another replica removed meanwhile makes it a publish.
    /// </summary>
    public void Replace(string stagingDirectory, string name)
    {
        for (var attempt = 0; ; attempt++)
        {
            var old = TrashPath(name, Replaced);
            var moved = TryMove(ModelDirectory(name), old);
            if (TryPublish(stagingDirectory, name))
            {
                if (moved) DeleteQuietly(old);
                return;
            }
            // Another replica published this name between the two renames: retire theirs too.
            if (moved) DeleteQuietly(old);
            if (attempt == 3) throw new IOException($"'{name}' kept changing while it was replaced.");
        }
    }

    /// <summary>Removes a model folder: renamed away first, so a half-deleted model is never loaded.</summary>
    /// <returns>False when it was not there (another replica removed it).</returns>
    public bool Remove(string name)
    {
        var old = TrashPath(name, Deleted);
        if (!TryMove(ModelDirectory(name), old)) return false;
        DeleteQuietly(old);
        return true;
    }

    public static void DeleteQuietly(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else if (File.Exists(path)) File.Delete(path);
        }
        catch (IOException) { } // retried by the next Recover()
        catch (UnauthorizedAccessException) { }
    }

    public void Dispose()
    {
        _lock?.Dispose();
        _lock = null;
        DeleteQuietly(OwnStaging);
    }

    private static bool TryMove(string from, string to)
    {
        try
        {
            Directory.Move(from, to);
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Creates this process's staging folder and holds its lock (an exclusive open: flock on Linux),
    /// once for the uploads that start together. Claimed again where the lock file is gone: another
    /// replica's <see cref="Recover"/> removes a folder it finds unlocked, and it may have looked
    /// between this folder's creation and its lock (or held the lock a moment for its probe).
    /// </summary>
    private void ClaimOwnStaging()
    {
        var lockPath = Path.Combine(OwnStaging, LockFile);
        lock (_claim)
        {
            if (_lock is not null && File.Exists(lockPath)) return;
            _lock?.Dispose();
            _lock = null;
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    Directory.CreateDirectory(OwnStaging);
                    _lock = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                    return;
                }
                catch (IOException) when (attempt < 5)
                {
                    Thread.Sleep(10);
                }
            }
        }
    }

    /// <summary>Whether the process that owns <c>.staging/{owner}</c> still runs: it holds the lock.</summary>
    private bool OwnerAlive(string owner)
    {
        var lockPath = Path.Combine(Staging, owner, LockFile);
        if (!File.Exists(lockPath)) return false;
        try
        {
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    private string TrashPath(string name, string reason) => Path.Combine(Trash, $"{name}.{_owner}{OwnerSeparator}{Guid.NewGuid():N}{reason}");
}
