namespace SaliencyService.Tests.Support;

/// <summary>
/// Uploads left in a store's <c>.staging</c>: everything in it but each live process's own folder
/// and lock (<c>.staging/{owner}/.lock</c>), which stay while that process runs.
/// </summary>
public static class StagedUploads
{
    public static IEnumerable<string> In(string store) =>
        Directory.EnumerateFileSystemEntries(Path.Combine(store, ".staging"))
            .SelectMany(owner => Directory.Exists(owner) ? Directory.EnumerateFileSystemEntries(owner) : [owner])
            .Where(entry => Path.GetFileName(entry) != ".lock");
}
