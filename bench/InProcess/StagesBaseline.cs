using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using static TorchSharp.torch;

namespace SaliencyService.Bench;

/// <summary>
/// Where a gradient map's time goes on ONNX Runtime: the served forward alone (and with
/// <see cref="WinogradPredictions"/>, where the kernel wins a convolution here), the explain
/// engine's forward alone, and one whole pass (forward, target, backward) per rule (with a batch,
/// also the pass that sums the batch's gradients), each timed
/// REPEATS times; with PROFILE_DIR set, ONNX Runtime's profiler writes one JSON trace per session
/// there (per-operator times).
/// </summary>
public static class StagesBaseline
{
    public static int Run(string modelPath, string inputPath, int repeats)
    {
        var profile = Environment.GetEnvironmentVariable("PROFILE_DIR");
        var sessions = new OnnxSessionFactory(new OnnxRuntimeOptions { ExecutionProvider = "cpu", ProfilePrefix = profile is null ? null : Path.Combine(profile, "session") });
        var (session, provider) = sessions.Create(modelPath);
        using var onnx = new OnnxModel(session, provider);
        var input = Npy.Read(File.ReadAllBytes(inputPath), long.MaxValue);
        var model = OnnxFile.Load(modelPath);
        using var mirror = GraphMirror.Build(model, onnx.Inputs[0].Name, onnx.Outputs[0].Name).Mirror ?? throw new InvalidOperationException("no mirror");
        using var backprop = OrtBackprop.Create(model, mirror, input.Shape, onnx.Inputs[0].Shape[0] < 0, m => sessions.Create(m).Session);
        using var x = tensor(input.Data, input.Shape);

        // A new session's first runs are slow for a while (mobilenet_v2's first rule: ~20 of them at
        // 19-28 ms against 14 after), so each stage runs 20 times before it is timed.
        double Median(Action pass) => Report.Percentile(Report.Time(repeats, () =>
        {
            using var scope = NewDisposeScope();
            pass();
        }, warmUp: 20), 0.5);
        Report.Line(("stage", "served forward (ORT Run)"), ("p50_ms", Median(() => OrtBaseline.TimedRun(session, input))));
        // Predictions with Saliency:OnnxRuntime:WinogradPredictions: the convolutions the kernel wins here as the kernel.
        using (var winograd = new OnnxModel(sessions.Create(modelPath).Session, provider))
        {
            var preprocessing = PreprocessingResolver.Resolve(new ModelManifest(), winograd.Inputs, winograd.Outputs);
            var outcome = WinogradPredictions.Build(winograd, model, backprop.Shapes, preprocessing, onnx.Outputs[0].Name, sessions);
            if (outcome.Kernels > 0)
                Report.Line(("stage", "served forward, Winograd predictions"), ("kernels", outcome.Kernels),
                    ("p50_ms", Median(() => winograd.Run(onnx.Inputs[0].Name, input, onnx.Outputs[0].Name))));
        }
        Report.Line(("stage", "forward alone"), ("merged", backprop.Merged), ("recorded", backprop.RecordedCount),
            ("p50_ms", Median(() => backprop.Forward(x))));
        foreach (var rule in new[] { RectifierRule.Gradient, RectifierRule.GuidedBackprop })
        {
            Report.Line(("stage", "forward and backward, " + rule), ("merged", backprop.Merged), ("p50_ms", Median(() => backprop.Run(x, -1, rule))));
            // Integrated gradients' and SmoothGrad's passes: a batch's gradients summed.
            if (input.Shape[0] > 1)
                Report.Line(("stage", "forward and backward summed over the batch, " + rule), ("merged", backprop.Merged),
                    ("p50_ms", Median(() => backprop.Run(x, -1, rule, summed: true))));
        }
        foreach (var (shape, outcome) in WinogradRace.Raced)
            Report.Line(("winograd_race", $"{shape.Outputs}x{shape.Inputs}x{shape.Height}x{shape.Width}"),
                ("forward_tile2_ratio", Ratio(outcome, WinogradConvolutions.SmallTile, forward: true)),
                ("backward_tile2_ratio", Ratio(outcome, WinogradConvolutions.SmallTile, forward: false)),
                ("backward_tile4_ratio", Ratio(outcome, WinogradConvolutions.LargeTile, forward: false)));
        foreach (var (shape, outcome) in WinogradRace.RacedStrided)
            Report.Line(("strided_race", $"{shape.Outputs}x{shape.Inputs}x{shape.Height}x{shape.Width}"),
                ("forward_ratio", Math.Round(outcome.Ratio(forward: true), 3)), ("backward_ratio", Math.Round(outcome.Ratio(forward: false), 3)));
        return 0;
    }

    /// <summary>A race's ratio, or "none" where its side failed or was not raced.</summary>
    private static object Ratio(WinogradRace.Outcome outcome, long tile, bool forward) =>
        outcome.Ratio(tile, forward) is var ratio && double.IsFinite(ratio) ? Math.Round(ratio, 3) : "none";
}
