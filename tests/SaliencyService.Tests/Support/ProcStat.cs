namespace SaliencyService.Tests.Support;

/// <summary>
/// Linux's <c>/proc/PID/stat</c> line, whose command name may itself hold spaces and parentheses,
/// and this process's resident memory.
/// </summary>
public static class ProcStat
{
    /// <summary>The fields after the command name: [0] is proc(5)'s field 3 (state), [1] the parent's id, [7] minor faults, [16] nice.</summary>
    public static string[] Fields(string stat) => stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>This process's resident memory, in bytes (proc(5)'s statm).</summary>
    public static long Resident() =>
        long.Parse(File.ReadAllText("/proc/self/statm").Split(' ')[1]) * Environment.SystemPageSize;
}
