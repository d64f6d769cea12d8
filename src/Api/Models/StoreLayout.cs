namespace SaliencyService.Api.Models;

/// <summary>
/// The model repository on disk: <c>{root}/{name}/model.onnx</c> + <c>model.json</c>, plus two
/// hidden work folders on the same file system so that every change is a directory rename:
/// <c>.staging</c> (uploads being written and validated) and <c>.trash</c> (versions being removed).
/// A crash at any point leaves either the old or the new version in place; <see cref="Recover"/>
/// finishes or undoes whatever a crash interrupted.
/// </summary>
public sealed class StoreLayout
{
    public const string ModelFile = "model.onnx";
    public const string ManifestFile = "model.json";
    private const string Replaced = ".replaced";
    private const string Deleted = ".deleted";

    public StoreLayout(string root)
    {
        Root = Path.GetFullPath(root);
        Staging = Path.Combine(Root, ".staging");
        Trash = Path.Combine(Root, ".trash");
    }

    public string Root { get; }
    public string Staging { get; }
    public string Trash { get; }

    public string ModelDirectory(string name) => Path.Combine(Root, name);

    /// <summary>Names of the model folders (hidden work folders excluded).</summary>
    public IEnumerable<string> ModelFolders() =>
        Directory.EnumerateDirectories(Root)
            .Select(Path.GetFileName)
            .Where(n => n is not null && !n.StartsWith('.'))
            .Select(n => n!)
            .Order(StringComparer.Ordinal);

    /// <summary>
    /// Run once at start-up, before models load: uploads that never committed are dropped; a
    /// replace interrupted between its two renames gets its old version back; trash is emptied.
    /// </summary>
    public void Recover()
    {
        Directory.CreateDirectory(Root);
        DeleteQuietly(Staging);
        if (Directory.Exists(Trash))
        {
            foreach (var entry in Directory.EnumerateDirectories(Trash))
            {
                var file = Path.GetFileName(entry);
                if (!file.EndsWith(Replaced, StringComparison.Ordinal)) continue;
                var stem = file[..^Replaced.Length];             // "{name}.{guid}"
                var name = stem[..Math.Max(0, stem.LastIndexOf('.'))];
                if (ModelNames.IsValid(name) && !Directory.Exists(ModelDirectory(name)))
                    Directory.Move(entry, ModelDirectory(name));
            }
            DeleteQuietly(Trash);
        }
        Directory.CreateDirectory(Staging);
        Directory.CreateDirectory(Trash);
    }

    /// <summary>A fresh folder for one upload.</summary>
    public string NewStagingDirectory()
    {
        var path = Path.Combine(Staging, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Moves a validated staging folder into place (the name must be free).</summary>
    public void Publish(string stagingDirectory, string name) => Directory.Move(stagingDirectory, ModelDirectory(name));

    /// <summary>Swaps a model folder for a validated staging folder: two renames, see <see cref="Recover"/>.</summary>
    public void Replace(string stagingDirectory, string name)
    {
        var old = TrashPath(name, Replaced);
        Directory.Move(ModelDirectory(name), old);
        Directory.Move(stagingDirectory, ModelDirectory(name));
        DeleteQuietly(old);
    }

    /// <summary>Removes a model folder: renamed away first, so a half-deleted model is never loaded.</summary>
    public void Remove(string name)
    {
        var old = TrashPath(name, Deleted);
        Directory.Move(ModelDirectory(name), old);
        DeleteQuietly(old);
    }

    public static void DeleteQuietly(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException) { } // retried by the next Recover()
        catch (UnauthorizedAccessException) { }
    }

    private string TrashPath(string name, string reason) => Path.Combine(Trash, $"{name}.{Guid.NewGuid():N}{reason}");
}
