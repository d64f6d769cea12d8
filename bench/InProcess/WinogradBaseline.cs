using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Bench;

/// <summary>
/// The engine's Winograd kernel (<see cref="NativeOps.WinogradConv"/>) against ONNX Runtime's
/// <c>Conv</c> on ResNet's four 3×3 shapes (64 channels at 56², 128 at 28², 256 at 14², 512 at 7²),
/// a batch of BATCH: one single-node session each (ONNX Runtime's, the kernel's F(2×2) and its
/// F(4×4) tiles), constant random weights, the same input, run in turn REPEATS times (the order
/// turning each round); the p50s and the median of the rounds' ratios to ONNX Runtime's. ONNX
/// Runtime's single node includes the reorders into and out of its blocked layout, which the
/// service's race (<see cref="WinogradRace"/>, printed by <c>stages</c>) leaves out of ONNX Runtime's
/// side and charges to a forward's F(2×2) kernel. With <c>flushMb</c> above zero, every core touches
/// its share of that many megabytes before each call: in a pass each node's operands have left the
/// caches by the time it runs again (bench/analysis.md, forty-eighth pass).
/// </summary>
public static class WinogradBaseline
{
    public static int Run(int batch, int repeats, int flushMb)
    {
        if (!NativeOps.Available) throw new InvalidOperationException("the engine's kernels (libsaliency_ops.so) are not built");
        var sessions = new OnnxSessionFactory(new OnnxRuntimeOptions { ExecutionProvider = "cpu" });
        var random = new Random(1);
        var flushed = new byte[(long)Math.Max(flushMb, 0) << 20];
        foreach (var (channels, size) in new[] { (64, 56), (128, 28), (256, 14), (512, 7) })
        {
            long[] shape = [batch, channels, size, size];
            var weights = Enumerable.Range(0, channels * channels * 9).Select(_ => (float)(random.NextDouble() - 0.5) / channels).ToArray();
            var input = Enumerable.Range(0, batch * channels * size * size).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
            using var ort = sessions.Create(WinogradRace.Model(shape, channels, weights, "Conv", "", BackwardGraph.Attribute("pads", [1, 1, 1, 1]))).Session;
            InferenceSession Kernel(int tile) => sessions.Create(WinogradRace.Model(shape, channels, weights, NativeOps.WinogradConv, NativeOps.Domain,
                BackwardGraph.Attribute("tile", tile))).Session;
            using var tile2 = Kernel(2);
            using var tile4 = Kernel(4);
            using var x = OrtValue.CreateTensorValueFromMemory(input, shape);
            using var runOptions = new RunOptions();
            Action Side(InferenceSession session) => () => session.Run(runOptions, ["x"], [x], ["y"]).Dispose();
            var times = Report.InTurn([Side(ort), Side(tile2), Side(tile4)], repeats, () => Flush(flushed));
            double P50(Func<double[], double> of) => Report.P50(times, of);
            Report.Line(("winograd", $"{channels}x{size}x{size}"), ("batch", batch), ("ort_p50_ms", P50(t => t[0])),
                ("tile2_p50_ms", P50(t => t[1])), ("tile2_ratio", P50(t => t[1] / t[0])),
                ("tile4_p50_ms", P50(t => t[2])), ("tile4_ratio", P50(t => t[2] / t[0])));
        }
        return 0;
    }

    // Writes a byte of every cache line of flushed (if any), the cores sharing the work.
    public static void Flush(byte[] flushed)
    {
        if (flushed.Length == 0) return;
        var parts = Environment.ProcessorCount;
        Parallel.For(0, parts, part =>
        {
            var share = flushed.AsSpan(part * (flushed.Length / parts), flushed.Length / parts);
            for (var i = 0; i < share.Length; i += 64) share[i]++;
        });
    }
}
