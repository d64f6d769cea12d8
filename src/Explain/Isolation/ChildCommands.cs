using System.Runtime.InteropServices;
using SaliencyService.Explain.Torch;

namespace SaliencyService.Explain.Isolation;

/// <summary>
/// What a child process of the service does (<see cref="ChildProcess"/>): the service's entry point
/// calls <see cref="TryRun"/> first and exits with its code when it handled the arguments.
/// </summary>
public static class ChildCommands
{
    /// <summary>The oneDNN known-answer test (<see cref="OneDnnSelfTest"/>).</summary>
    public const string SelfTest = "onednn-self-test";

    /// <summary>The import's checks of an untrusted model (<see cref="Engine.ImportCheck"/>).</summary>
    public const string ImportCheck = "import-check";

    /// <summary>
    /// For tests only: <c>VERB</c> or <c>VERB@CAP</c> makes that child die of SIGFPE (under that
    /// oneDNN cap, <c>DEFAULT</c> for none), as a faulty native kernel would; a progress step
    /// (<see cref="ChildProcess.WriteProgress"/>) makes it die right after reporting that step.
    /// </summary>
    public const string FaultVariable = "SALIENCY_TEST_CHILD_FAULT";

    /// <returns>True, with the exit code, when <paramref name="args"/> asked for a child's work.</returns>
    public static bool TryRun(string[] args, out int exitCode)
    {
        exitCode = 0;
        if (args.Length < 2 || args[0] != ChildProcess.Flag) return false;
        // The parent has put its oneDNN choice in this process's environment already.
        TorchNativeLoader.Configure(OneDnnGuard.Inherit, 0);
        if (args[1] == ChildProcess.SpareVerb)
        {
            WarmUp();
            // The parent's line: the verb and its arguments. None (the parent is gone, or retired this spare): nothing to do.
            var work = Task.Run(Console.In.ReadLine);
            // Meanwhile native heap is faulted in for the check, until the line comes; on this thread,
            // the check's, as glibc keeps a thread's frees in that thread's arena.
            NativeHeap.Reserve(args.Length > 2 && int.TryParse(args[2], out var megabytes) ? (long)megabytes << 20 : 0, () => work.IsCompleted);
            ChildProcess.WriteWarm();
            if (work.GetAwaiter().GetResult() is not { } line) return true;
            args = [ChildProcess.Flag, .. System.Text.Json.JsonSerializer.Deserialize<string[]>(line)!];
        }
        CrashIfAsked(args[1]);
        exitCode = args[1] switch
        {
            SelfTest => OneDnnGuard.RunSelfTest(),
            ImportCheck => Engine.ImportCheck.RunChild(args[2..]),
            _ => 2,
        };
        // The answer is written: end now. The runtime's and native libraries' orderly teardown
        // (libtorch, ONNX Runtime) took ~150 ms that the parent, waiting for the exit, paid.
        Console.Out.Flush();
        Console.Error.Flush();
        _exit(exitCode);
        return true;
    }

    /// <summary>
    /// A small trusted model folder a spare checks while it waits (the service's own demo model), so
    /// that the real check runs on loaded libraries and compiled code; null: libraries only.
    /// </summary>
    public static string? WarmUpModel { get; set; }

    private static void WarmUp()
    {
        try
        {
            TorchNativeLoader.EnsureLoaded();
            if (WarmUpModel is not null && File.Exists(Path.Combine(WarmUpModel, Engine.ModelInspection.ModelFile)))
            {
                var sessions = new Serving.OnnxSessionFactory(new Serving.OnnxRuntimeOptions { ExecutionProvider = "cpu" });
                var model = Engine.ModelInspection.Open(WarmUpModel, sessions, new Engine.ExplainAnalysis(new Engine.ExplainOptions(), sessions) { CheckOnly = true }, null);
                model.Explainer?.Dispose();
                model.Onnx.Dispose();
            }
        }
        catch (Exception)
        {
            // Only a head start: the real verb meets any failure again and reports it.
        }
    }

    internal static void CrashIfAsked(string verb)
    {
        var fault = Environment.GetEnvironmentVariable(FaultVariable);
        if (string.IsNullOrEmpty(fault)) return;
        var cap = Environment.GetEnvironmentVariable(OneDnnGuard.Variable);
        var asked = fault.Split('@');
        if (asked[0] != verb) return;
        if (asked.Length > 1 && !asked[1].Equals(string.IsNullOrEmpty(cap) ? "DEFAULT" : cap, StringComparison.OrdinalIgnoreCase)) return;
        // SIGFPE, as libtorch's oneDNN dies on AMD Zen 5; .NET's own handler would ignore a raised
        // one, so the default action (terminate) is restored first.
        const int SigFpe = 8;
        signal(SigFpe, IntPtr.Zero);
        raise(SigFpe);
    }

    [DllImport("libc", EntryPoint = "signal")]
    private static extern IntPtr signal(int signal, IntPtr handler);

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void _exit(int status);

    [DllImport("libc", EntryPoint = "raise")]
    private static extern int raise(int signal);
}
