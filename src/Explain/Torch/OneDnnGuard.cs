using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SaliencyService.Explain.Isolation;

namespace SaliencyService.Explain.Torch;

/// <summary>What libtorch's oneDNN may use in this process, and why.</summary>
/// <param name="Setting">The configured value (<c>auto</c>, <c>none</c>, <c>default</c> or a cap such as <c>AVX2</c>).</param>
/// <param name="MaxIsa">The cap set in <c>ONEDNN_MAX_CPU_ISA</c>, <c>default</c> for none, or <c>none</c> for oneDNN off.</param>
public sealed record OneDnnChoice(string Setting, string MaxIsa, string Reason)
{
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Disabled => MaxIsa == OneDnnGuard.Off;
}

/// <summary>
/// Chooses, before libtorch loads, how far libtorch's bundled oneDNN may go on this CPU. libtorch
/// 2.10's oneDNN 3.7 computes wrong input gradients, or dies of SIGFPE while choosing a kernel, on
/// some CPUs (AMD Zen 5: AVX-512 with bf16). oneDNN reads its instruction-set cap
/// (<c>ONEDNN_MAX_CPU_ISA</c>) once, from the native environment, so the choice is made by running
/// <see cref="OneDnnSelfTest"/> in child processes under each candidate, widest first, and the first
/// that passes is set here with libc's setenv (.NET's own environment does not reach native code).
/// If none passes, oneDNN is turned off and libtorch uses its own kernels. The verdict is cached
/// per CPU, libtorch and service build, so later processes on the same host do not repeat it.
/// </summary>
public static class OneDnnGuard
{
    public const string Variable = "ONEDNN_MAX_CPU_ISA";
    public const string Auto = "auto";
    public const string Off = "none";
    public const string Default = "default";

    /// <summary>A child's setting: take the cap its parent put in the environment, probe nothing.</summary>
    public const string Inherit = "inherit";

    /// <summary>Widest first: no cap, then AVX-512 without its newer extensions, AVX2, SSE4.1.</summary>
    public static IReadOnlyList<string> Candidates { get; } = [Default, "AVX512_CORE", "AVX2", "SSE41"];

    /// <summary>Tells child processes the choice, "none" (oneDNN off) included.</summary>
    public const string ChoiceVariable = "SALIENCY_ONEDNN_CHOICE";

    /// <summary>Applies <paramref name="setting"/>; call before libtorch loads.</summary>
    public static OneDnnChoice Choose(string? setting, string libtorch)
    {
        var choice = Decide(setting, libtorch);
        Environment.SetEnvironmentVariable(ChoiceVariable, choice.MaxIsa);
        return choice;
    }

    /// <param name="libtorch">libtorch_cpu.so, whose identity keys the cached verdict.</param>
    private static OneDnnChoice Decide(string? setting, string libtorch)
    {
        setting = string.IsNullOrWhiteSpace(setting) ? Auto : setting.Trim();
        var inherited = Environment.GetEnvironmentVariable(Variable);
        if (setting == Inherit)
            return new OneDnnChoice(setting, Environment.GetEnvironmentVariable(ChoiceVariable) ?? (string.IsNullOrEmpty(inherited) ? Default : inherited.ToUpperInvariant()),
                "inherited from the parent process");
        if (setting.Equals(Auto, StringComparison.OrdinalIgnoreCase) && !string.IsNullOrEmpty(inherited))
            return new OneDnnChoice(setting, inherited.ToUpperInvariant(), $"{Variable}={inherited} set in the environment");
        if (setting.Equals(Off, StringComparison.OrdinalIgnoreCase))
            return new OneDnnChoice(setting, Off, "configured (Saliency:Explain:OneDnnMaxIsa)");
        if (!setting.Equals(Auto, StringComparison.OrdinalIgnoreCase))
        {
            var cap = setting.ToUpperInvariant();
            if (cap != "DEFAULT") SetNative(Variable, cap);
            return new OneDnnChoice(setting, cap == "DEFAULT" ? Default : cap, "configured (Saliency:Explain:OneDnnMaxIsa)");
        }

        var cache = CachePath(libtorch);
        var (choice, tested) = ReadCache(cache) is { } cached ? (cached, false) : Probe();
        if (choice.MaxIsa != Default && choice.MaxIsa != Off) SetNative(Variable, choice.MaxIsa);
        if (tested) WriteCache(cache, choice);
        return choice;
    }

    /// <returns>The choice, and whether a self-test decided it (only then is it cached).</returns>
    private static (OneDnnChoice, bool Tested) Probe()
    {
        var failures = new List<string>();
        foreach (var candidate in Candidates)
        {
            // Exactly this candidate, whatever this process inherited.
            var environment = new Dictionary<string, string?>
            {
                [Variable] = candidate == Default ? null : candidate,
                [ChoiceVariable] = candidate,
            };
            ChildResult result;
            try
            {
                result = ChildProcess.Run(ChildCommands.SelfTest, [], environment, TimeSpan.FromMinutes(2));
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // No binary to run the test in (a host that embeds the engine without the service's
                // entry point): the narrowest cap, which was right on every CPU seen.
                return (new OneDnnChoice(Auto, "SSE41", $"capped at SSE41 untested: the self-test could not run ({e.Message})"), false);
            }
            if (result.Succeeded)
            {
                var why = failures.Count == 0
                    ? "the self-test passed with oneDNN uncapped"
                    : $"the self-test passed at {candidate}; wider failed: {string.Join("; ", failures)}";
                return (new OneDnnChoice(Auto, candidate, why), true);
            }
            failures.Add($"{candidate}: {(result.Signal is null && result.LastLine.Length > 0 ? result.LastLine : result.Describe())}");
        }
        return (new OneDnnChoice(Auto, Off, $"oneDNN turned off: the self-test failed at every cap ({string.Join("; ", failures)})"), true);
    }

    /// <summary>Runs the self-test here (in the child); exit code 0 when it passes.</summary>
    public static int RunSelfTest()
    {
        TorchNativeLoader.EnsureLoaded();
        var failure = OneDnnSelfTest.Run();
        Console.Out.WriteLine(failure ?? "passed");
        return failure is null ? 0 : 3;
    }

    private static string CachePath(string libtorch)
    {
        var identity = new StringBuilder();
        var file = new FileInfo(libtorch);
        identity.Append(file.FullName).Append('|').Append(file.Exists ? file.Length : 0).Append('|').Append(file.Exists ? file.LastWriteTimeUtc.Ticks : 0);
        identity.Append('|').Append(CpuIdentity()).Append('|').Append(Environment.ProcessorCount);
        // This build of the self-test: a changed test decides again.
        identity.Append('|').Append(typeof(OneDnnSelfTest).Assembly.ManifestModule.ModuleVersionId);
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity.ToString())))[..24];
        return Path.Combine(Path.GetTempPath(), "saliency-onednn", key + ".json");
    }

    /// <summary>The CPU's model and feature flags (what oneDNN's dispatch depends on).</summary>
    private static string CpuIdentity()
    {
        try
        {
            var lines = File.ReadLines("/proc/cpuinfo").TakeWhile(l => l.Length > 0)
                .Where(l => l.StartsWith("vendor_id") || l.StartsWith("cpu family") || l.StartsWith("model") || l.StartsWith("stepping")
                            || l.StartsWith("microcode") || l.StartsWith("flags"));
            return string.Join("|", lines);
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
        catch (UnauthorizedAccessException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }

    private static OneDnnChoice? ReadCache(string path)
    {
        try
        {
            var cached = JsonSerializer.Deserialize<OneDnnChoice>(File.ReadAllText(path));
            return cached is null ? null : cached with { Reason = cached.Reason + " (verdict cached for this CPU and libtorch)" };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            return null;
        }
    }

    private static void WriteCache(string path, OneDnnChoice choice)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            TorchNativeLoader.EnsureFile(path, temporary => File.WriteAllText(temporary, JsonSerializer.Serialize(choice)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only temporary folder: the next process probes again.
        }
    }

    private static void SetNative(string name, string value)
    {
        Environment.SetEnvironmentVariable(name, value); // for .NET readers and children
        if (OperatingSystem.IsWindows()) return;
        if (setenv(name, value, 1) != 0) throw new InvalidOperationException($"setenv({name}) failed.");
    }

    [DllImport("libc", EntryPoint = "setenv", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
