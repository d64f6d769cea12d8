namespace SaliencyService.Api.Configuration;

/// <summary>
/// How many connections the service keeps open at once (<see cref="ConnectionSlots"/>). Each
/// takes a file descriptor, and so do the runtime's own needs as requests come (assemblies
/// loaded on first use, the import check's child processes, staged uploads). A process out of
/// descriptors fails those too, and .NET may then end it ("Out of memory."): a flood of 300
/// connections killed a service whose limit was 420. So by default the connections get the
/// process's open-file limit less what is open at start and <see cref="Reserve"/>. .NET raises
/// the soft limit to the hard one as it starts, so on usual hosts (a hard limit of 2^19–2^20)
/// the cap is far above any load.
/// </summary>
public static class ConnectionLimit
{
    /// <summary>Descriptors kept for the process beyond those open when the limit is worked out.</summary>
    public const long Reserve = 512;

    /// <summary>The fewest connections the cap allows, however low the limit.</summary>
    public const long Fewest = 16;

    /// <summary>
    /// <paramref name="configured"/> where set (0 or less: no cap); else, where the open-file
    /// limit is known, that limit less the descriptors open now and <see cref="Reserve"/>.
    /// </summary>
    public static long? Of(long? configured) =>
        configured is { } set ? (set > 0 ? set : null) : OpenFileLimit() is { } limit ? Math.Max(Fewest, limit - OpenDescriptors() - Reserve) : null;

    /// <summary>The process's open-file limit (RLIMIT_NOFILE's soft value) from /proc, or null where unknown or unlimited.</summary>
    private static long? OpenFileLimit()
    {
        try
        {
            var line = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
            var soft = line?["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            return long.TryParse(soft, out var limit) ? limit : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // not Linux
        }
    }

    private static long OpenDescriptors() => Directory.EnumerateFileSystemEntries("/proc/self/fd").LongCount();
}
