using System.Diagnostics;
using System.Text.Json;

namespace SaliencyService.Explain.Isolation;

/// <summary>How a child ended: its exit code, the signal that killed it (if any), and its last output line.</summary>
public sealed record ChildResult(int ExitCode, int? Signal, string LastLine, string Errors)
{
    private const int SigKill = 9;

    public bool Succeeded => ExitCode == 0;

    /// <summary>
    /// Whether a native fault of the child's own ended it: a signal other than SIGKILL, which is
    /// its memory or time limit (a second try would only meet that again).
    /// </summary>
    public bool Faulted => Signal is { } signal && signal != SigKill;

    /// <summary>A crash (a signal), as the reason a caller gives.</summary>
    public string Describe() => Signal is { } signal
        ? $"the process was killed by signal {signal} ({SignalName(signal)})"
        : $"the process exited with code {ExitCode}{(Errors.Length > 0 ? ": " + Errors : "")}";

    private static string SignalName(int signal) => signal switch
    {
        4 => "SIGILL, illegal instruction",
        6 => "SIGABRT, aborted",
        7 => "SIGBUS",
        8 => "SIGFPE, arithmetic fault",
        SigKill => "SIGKILL, out of memory or the time limit",
        11 => "SIGSEGV, invalid memory access",
        _ => "signal",
    };
}

/// <summary>
/// Runs work that may crash a native library (libtorch, ONNX Runtime on an untrusted model) in a
/// child process of the service's own binary, so that a crash costs the child, not the service.
/// The service's entry point hands <c>--saliency-child VERB ...</c> to <see cref="ChildCommands"/>.
/// </summary>
public static class ChildProcess
{
    public const string Flag = "--saliency-child";

    /// <summary>
    /// The service's entry assembly (the Api sets it at start-up). Default: SaliencyService.Api.dll
    /// beside this library, which is where it is in the service's and the tests' output folders.
    /// </summary>
    public static string? EntryAssembly { get; set; }

    /// <summary>
    /// The verb of a spare child: it loads the native libraries, then reads its real verb and
    /// arguments from its input, faulting native heap in meanwhile (its argument: how many MiB).
    /// </summary>
    public const string SpareVerb = "spare";

    private static readonly object SpareLock = new();
    private static Started? _spare;

    /// <summary>
    /// Runs <paramref name="verb"/> in a child with <paramref name="environment"/> added to this
    /// process's (a null value removes a variable), and waits for it at most
    /// <paramref name="timeout"/> (then it is killed: signal 9).
    /// </summary>
    /// <param name="progress">Hears each step the child reports passing (<see cref="WriteProgress"/>), from its first.</param>
    public static ChildResult Run(string verb, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string?> environment, TimeSpan timeout,
        Action<string>? progress = null) =>
        Wait(Start([verb, .. arguments], environment, progress: progress), timeout);

    /// <summary>
    /// Runs <paramref name="verb"/> in a spare child started ahead of need, with this process's
    /// environment. A spare has loaded libtorch and ONNX Runtime while the service waited, so the
    /// work pays only for itself. Each child still serves one verb: a native fault it met cannot
    /// reach the next. The caller starts the next spare (<see cref="StartSpare"/>) once it has done
    /// what the answer was for: a spare's start-up takes cores from the work around it.
    /// </summary>
    /// <param name="progress">Hears each step the child reports passing (<see cref="WriteProgress"/>), on the thread reading its output.</param>
    public static ChildResult RunOnSpare(string verb, IReadOnlyList<string> arguments, TimeSpan timeout, Action<string>? progress = null)
    {
        Started? spare;
        lock (SpareLock)
        {
            spare = LiveSpare();
            _spare = null;
        }
        if (spare is null)
        {
            // None waits (serving has not paused since the last one was used): a child for this work
            // alone, at the service's priority and without a spare's warm-up. Under load a spare's
            // low priority made resnet18's import take 53 s instead of ~6.
            return Run(verb, arguments, new Dictionary<string, string?>(), timeout, progress);
        }
        spare.Progress = progress;
        try
        {
            spare.Process.StandardInput.WriteLine(JsonSerializer.Serialize<string[]>([verb, .. arguments]));
            spare.Process.StandardInput.Close();
        }
        catch (IOException)
        {
            // It died waiting (killed from outside): its exit is the result below.
        }
        return Wait(spare, timeout);
    }

    /// <summary>Starts a spare child now unless one waits already (the first isolated import then pays no start-up).</summary>
    public static void StartSpare()
    {
        lock (SpareLock) _spare = LiveSpare() ?? StartSpareProcess();
    }

    /// <summary>
    /// Completes once the waiting spare has warmed up (<see cref="WriteWarm"/>) or has ended; at
    /// once when there is none.
    /// </summary>
    public static Task SpareWarmedUp()
    {
        lock (SpareLock) return LiveSpare()?.Warm.Task ?? Task.CompletedTask;
    }

    /// <summary>The waiting spare, or null when there is none or it has died (killed from outside). Call under the lock.</summary>
    private static Started? LiveSpare()
    {
        if (_spare is { Process.HasExited: false } live) return live;
        _spare?.Process.Dispose();
        return _spare = null;
    }

    /// <summary>Native heap a spare faults in while it waits (<see cref="Engine.ExplainOptions.SpareHeapMegabytes"/>); the service sets it at start-up.</summary>
    public static int SpareHeapMegabytes { get; set; }

    private static Started StartSpareProcess() =>
        Start([SpareVerb, SpareHeapMegabytes.ToString(System.Globalization.CultureInfo.InvariantCulture)], new Dictionary<string, string?>(), background: true);

    private const string Nice = "/usr/bin/nice";

    private const string CallCountingDelay = "DOTNET_TC_CallCountingDelayMs";

    /// <summary>
    /// Marks a child's answer line (<see cref="WriteAnswer"/>): the parent takes it as soon as it
    /// is written, without waiting for the child's exit (the kernel's teardown of a large check's
    /// memory took ~70 ms).
    /// </summary>
    private const string AnswerMark = "saliency-child-answer: ";

    /// <summary>Marks a step a child has passed (<see cref="WriteProgress"/>).</summary>
    private const string ProgressMark = "saliency-child-progress: ";

    /// <summary>Marks a spare's warm-up done (<see cref="WriteWarm"/>).</summary>
    private const string WarmMark = "saliency-child-warm";

    /// <summary>The child's side: writes its answer for the parent, who reads nothing after it.</summary>
    public static void WriteAnswer(string line) => WriteMarked(AnswerMark, line);

    /// <summary>
    /// The child's side: tells the parent it has passed <paramref name="step"/> (its caller's
    /// <c>progress</c> hears it at once: the step, then a space and <paramref name="detail"/> if given).
    /// </summary>
    public static void WriteProgress(string step, string? detail = null)
    {
        WriteMarked(ProgressMark, detail is null ? step : $"{step} {detail}");
        ChildCommands.CrashIfAsked(step);
    }

    /// <summary>The spare's side: its libraries are loaded, its warm-up check has run and its heap is faulted in (<see cref="SpareWarmedUp"/>).</summary>
    public static void WriteWarm() => WriteMarked(WarmMark, "");

    /// <summary>A marked line on a line of its own (native libraries may have left one unfinished), sent at once.</summary>
    private static void WriteMarked(string mark, string text)
    {
        Console.Out.WriteLine();
        Console.Out.WriteLine(mark + text);
        Console.Out.Flush();
    }

    private sealed class Started(Process process, Task<string> errors)
    {
        public Process Process { get; } = process;
        public Task<string> Errors { get; } = errors;
        public Task<string> Output { get; set; } = Task.FromResult("");
        public TaskCompletionSource<string> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Set when a spare says it has warmed up, or its output ends (it is gone).</summary>
        public TaskCompletionSource Warm { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Hears each step the child passes; set by whoever hands the child its work.</summary>
        public volatile Action<string>? Progress;
    }

    /// <param name="background">
    /// At a low CPU priority (nice 10), every thread of it: a spare's warm-up and the import check it
    /// then runs take a tenth of a core that serving wants (CFS weights 110 against 1,024), and a quiet
    /// host gives them all of it. At nice 19 (a sixty-eighth) the spare that an import starts was
    /// still warming up when the serving load that followed stopped, so the next import waited for it
    /// (1.1–1.7 s against 0.66–0.82 s), and an import under full load took 17 s against 5–7 s.
    /// </param>
    /// <param name="progress">Hears each step the child reports passing, from its first.</param>
    private static Started Start(IReadOnlyList<string> verbAndArguments, IReadOnlyDictionary<string, string?> environment, bool background = false,
        Action<string>? progress = null)
    {
        var entry = EntryAssembly ?? Path.Combine(AppContext.BaseDirectory, "SaliencyService.Api.dll");
        if (!File.Exists(entry)) throw new InvalidOperationException($"The service binary {entry} is not there to run isolated work in.");
        var nice = background && File.Exists(Nice);
        var start = new ProcessStartInfo(nice ? Nice : DotnetHost())
        {
            RedirectStandardInput = true, // a spare reads its work there; any child ends when this process does (end of input)
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[.. nice ? ["-n", "10", DotnetHost()] : Array.Empty<string>(), "exec", entry, Flag, .. verbAndArguments])
            start.ArgumentList.Add(argument);
        // A child runs its work once: the runtime's default call-counting delay, not the service's 0 (set for
        // its steady state at once). What a spare's warm-up made hot is recompiled while it waits, and
        // nothing mid-check (that took 0.28 s of a resnet18 check's CPU).
        start.Environment[CallCountingDelay] = "100";
        foreach (var (name, value) in environment)
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        // The child's own logging and hosting are not started; it only answers on its standard output.
        var process = Process.Start(start) ?? throw new InvalidOperationException("The child process could not be started.");
        var started = new Started(process, process.StandardError.ReadToEndAsync()) { Progress = progress };
        started.Output = ReadOutputAsync(process.StandardOutput, started);
        return started;
    }

    /// <summary>All the child's output; its progress and its answer, each as soon as it comes (in order).</summary>
    private static async Task<string> ReadOutputAsync(StreamReader output, Started child)
    {
        var text = new System.Text.StringBuilder();
        while (await output.ReadLineAsync() is { } line)
        {
            text.AppendLine(line);
            if (line.StartsWith(AnswerMark, StringComparison.Ordinal)) child.Answer.TrySetResult(line[AnswerMark.Length..]);
            else if (line.StartsWith(ProgressMark, StringComparison.Ordinal)) child.Progress?.Invoke(line[ProgressMark.Length..]);
            else if (line == WarmMark) child.Warm.TrySetResult();
        }
        child.Warm.TrySetResult();
        return text.ToString();
    }

    private static ChildResult Wait(Started child, TimeSpan timeout)
    {
        var process = child.Process;
        var exited = process.WaitForExitAsync();
        if (Task.WaitAny([exited, child.Answer.Task], timeout) == 1)
        {
            // Answered: all that is left of it is its teardown, reaped in the background.
            _ = exited.ContinueWith(_ => process.Dispose(), TaskScheduler.Default);
            return new ChildResult(0, null, child.Answer.Task.Result, "");
        }
        using (process)
        {
            if (!exited.IsCompleted)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                return new ChildResult(137, 9, "", $"timed out after {timeout.TotalSeconds:0} s");
            }
            child.Output.Wait(); // its output read to the end: an answer written just before the exit is in
            var lastLine = child.Answer.Task.IsCompleted ? child.Answer.Task.Result
                : child.Output.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
            var errorText = string.Join(" ", child.Errors.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3));
            // .NET reports a child killed by signal N as exit code 128 + N.
            int? signal = process.ExitCode > 128 && process.ExitCode < 128 + 32 ? process.ExitCode - 128 : null;
            return new ChildResult(process.ExitCode, signal, lastLine, errorText);
        }
    }

    /// <summary>The dotnet host running this process, else the one on the PATH.</summary>
    private static string DotnetHost()
    {
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet") return current;
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk)) return fromSdk;
        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        return "dotnet";
    }
}
