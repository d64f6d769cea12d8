namespace SaliencyService.Tests.Support;

/// <summary>Launchers for <see cref="ServiceProcess.StartAsync"/>: each ends by exec'ing the command it is given, so the service keeps its process.</summary>
public static class Launchers
{
    /// <summary>util-linux's <c>prlimit</c>: an open-file limit, soft and hard.</summary>
    public static IReadOnlyList<string> OpenFiles(int limit) => ["prlimit", $"--nofile={limit}:{limit}"];

    /// <summary>
    /// util-linux's <c>unshare</c>: in a mount namespace of the service's own, a tmpfs over
    /// <paramref name="folder"/> holding a copy of what the folder held, then mounted read-only, as
    /// KServe mounts a model's storage or an operator a repository (needs root, as the suite runs).
    /// </summary>
    public static IReadOnlyList<string> ReadOnlyMount(string folder) =>
    [
        "unshare", "--mount", "--propagation", "private", "sh", "-ec",
        """
        copy=$(mktemp -d); cp -a "$1/." "$copy"
        mount -t tmpfs tmpfs "$1"; cp -a "$copy/." "$1"; rm -rf "$copy"
        mount -o remount,ro "$1"
        shift; exec "$@"
        """,
        "sh", folder, // $0, $1
    ];
}
