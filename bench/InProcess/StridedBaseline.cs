using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Bench;

/// <summary>
/// The engine's stride-2 kernel forms (<see cref="NativeOps.WinogradConv"/> with stride 2, and
/// transposed: the five-product algorithm) against ONNX Runtime's <c>Conv</c> and <c>ConvTranspose</c>
/// on ResNet's three downsampling 3×3 shapes (64 → 128 channels on 56², 128 → 256 on 28², 256 → 512
/// on 14²), a batch of BATCH: single-node sessions, constant random weights, run in turn REPEATS
/// times (the order turning each round), caches flushed as <see cref="WinogradBaseline"/> does with
/// FLUSH_MB; the p50s and the median of the rounds' ratios to ONNX Runtime's.
/// </summary>
public static class StridedBaseline
{
    public static int Run(int batch, int repeats, int flushMb)
    {
        if (!NativeOps.Available) throw new InvalidOperationException("the engine's kernels (libsaliency_ops.so) are not built");
        var sessions = new OnnxSessionFactory(new OnnxRuntimeOptions { ExecutionProvider = "cpu" });
        var random = new Random(1);
        var flushed = new byte[(long)Math.Max(flushMb, 0) << 20];
        var pads = BackwardGraph.Attribute("pads", [1, 1, 1, 1]);
        var strides = BackwardGraph.Attribute("strides", [2, 2]);
        foreach (var (channels, size) in new[] { (64, 56), (128, 28), (256, 14) })
        {
            var (outputs, half) = (2L * channels, size / 2);
            long[] wide = [batch, channels, size, size], narrow = [batch, outputs, half, half], weightShape = [outputs, channels, 3, 3];
            var weights = Enumerable.Range(0, (int)(outputs * channels * 9)).Select(_ => (float)(random.NextDouble() - 0.5) / channels).ToArray();
            using var x = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, (int)(batch * channels * size * size)).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), wide);
            using var dy = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, (int)(batch * outputs * half * half)).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), narrow);
            InferenceSession Open(long[] input, long[] output, string op, string domain, params AttributeProto[] attributes) =>
                sessions.Create(WinogradRace.Model(input, output, weightShape, weights, op, domain, attributes)).Session;
            // The transpose's weights are the convolution's own, [C_in, C_out] for ConvTranspose: dY's channels first.
            using var conv = Open(wide, narrow, "Conv", "", pads, strides);
            using var down = Open(wide, narrow, NativeOps.WinogradConv, NativeOps.Domain, BackwardGraph.Attribute("stride", 2));
            using var transpose = Open(narrow, wide, "ConvTranspose", "", pads, strides, BackwardGraph.Attribute("output_padding", [1, 1]));
            using var up = Open(narrow, wide, NativeOps.WinogradConv, NativeOps.Domain, BackwardGraph.Attribute("stride", 2),
                BackwardGraph.Attribute("transposed", 1), BackwardGraph.Attribute("output_padding", [1, 1]));
            using var runOptions = new RunOptions();
            Action Side(InferenceSession session, OrtValue input) => () => session.Run(runOptions, ["x"], [input], ["y"]).Dispose();
            var times = Report.InTurn([Side(conv, x), Side(down, x), Side(transpose, dy), Side(up, dy)], repeats, () => WinogradBaseline.Flush(flushed));
            double P50(Func<double[], double> of) => Report.P50(times, of);
            Report.Line(("strided", $"{channels}x{size}x{size}"), ("batch", batch), ("conv_p50_ms", P50(t => t[0])), ("down_p50_ms", P50(t => t[1])),
                ("down_ratio", P50(t => t[1] / t[0])), ("conv_transpose_p50_ms", P50(t => t[2])), ("up_p50_ms", P50(t => t[3])),
                ("up_ratio", P50(t => t[3] / t[2])));
        }
        return 0;
    }
}
