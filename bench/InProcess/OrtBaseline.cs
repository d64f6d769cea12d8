using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Bench;

/// <summary>
/// What a user would write instead of calling the service: one in-process ONNX Runtime session,
/// created with the service's own session options, fed a ready tensor and run by CONCURRENCY
/// threads at once for SECONDS.
/// </summary>
public static class OrtBaseline
{
    public static int Run(string modelPath, string inputPath, double seconds, int[] levels, bool bare = false)
    {
        var session = bare ? BareSession(modelPath) : CpuSession(modelPath).Session;
        using var owned = session;
        var input = Npy.Read(File.ReadAllBytes(inputPath), long.MaxValue);

        double RunOnce() => TimedRun(session, input);

        for (var i = 0; i < 5; i++) RunOnce();
        foreach (var concurrency in levels)
        {
            var latencies = new List<double>[concurrency];
            var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
            var clock = Stopwatch.StartNew();
            var threads = Enumerable.Range(0, concurrency).Select(t => new Thread(() =>
            {
                var mine = latencies[t] = [];
                while (Stopwatch.GetTimestamp() < deadline) mine.Add(RunOnce());
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            var all = latencies.SelectMany(l => l).Order().ToArray();
            Report.Line(("concurrency", concurrency), ("requests", all.Length), ("rps", all.Length / clock.Elapsed.TotalSeconds),
                ("p50_ms", Report.Percentile(all, 0.5)), ("p90_ms", Report.Percentile(all, 0.9)));
        }
        return 0;
    }

    /// <summary>One <c>Run</c> of a ready input on the session's first input and output, as a user would call it: milliseconds.</summary>
    public static double TimedRun(InferenceSession session, FloatTensor input) => Report.Milliseconds(() =>
    {
        using var value = OrtValue.CreateTensorValueFromMemory(input.Data, input.Shape);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, [session.InputNames[0]], [value], [session.OutputNames[0]]);
    });

    /// <summary>A session on the CPU provider with the service's default session options.</summary>
    public static (InferenceSession Session, string Provider) CpuSession(string modelPath) => CpuSessions.Create(modelPath);

    /// <summary>
    /// A session as ONNX Runtime's documentation writes one: every default (spinning on, full graph
    /// optimisation) except the thread count, all cores, as a user who knows this host would set it.
    /// </summary>
    /// <param name="stopSpinningAfterRun">Its threads stop spinning when a Run returns (when other work shares the cores).</param>
    public static InferenceSession BareSession(string modelPath, bool stopSpinningAfterRun = false)
    {
        using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount };
        if (stopSpinningAfterRun) options.AddSessionConfigEntry("session.force_spinning_stop", "1");
        return new InferenceSession(modelPath, options);
    }

    /// <summary>The service's session factory, on the CPU provider.</summary>
    public static OnnxSessionFactory CpuSessions { get; } = new(new OnnxRuntimeOptions { ExecutionProvider = "cpu" });
}
