using System.Diagnostics;
using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Tensors;
using static TorchSharp.torch;

namespace SaliencyService.Bench;

/// <summary>
/// The explain engine without HTTP: import analysis (mirror build and parity probe) once, then each
/// method REPEATS times on the input, as the service runs it (default options, own dispose scope).
/// The input is used as the model input directly (identity preprocessing).
/// </summary>
public static class MirrorBaseline
{
    public static int Run(string modelPath, string inputPath, int repeats, string[] methods)
    {
        var (session, provider) = OrtBaseline.CpuSession(modelPath);
        using var onnx = new OnnxModel(session, provider);
        var input = Npy.Read(File.ReadAllBytes(inputPath), long.MaxValue);
        var preprocessing = new Preprocessing(onnx.Inputs[0].Name, "NCHW", (int)input.Shape[2], (int)input.Shape[3], "RGB", 1, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]);
        var options = new ExplainOptions { OrtBackward = Environment.GetEnvironmentVariable("SALIENCY_ORT_BACKWARD") != "0" };
        var started = Stopwatch.GetTimestamp();
        var (explainer, descriptor) = new ExplainAnalysis(options, OrtBaseline.CpuSessions).Analyse(modelPath, onnx, preprocessing, onnx.Outputs[0].Name);
        Report.Line(("method", "import-analysis"), ("ms", Stopwatch.GetElapsedTime(started).TotalMilliseconds), ("parity", descriptor.ParityMaxAbsDiff ?? -1),
            ("torch_threads", get_num_threads()), ("backward", $"{descriptor.GradientEngine}: {descriptor.GradientEngineReason}"));
        using var owned = explainer ?? throw new InvalidOperationException(descriptor.Reason);

        Phases(explainer, input, repeats);
        OrtBackwardVersusAutograd(explainer, input, repeats);
        foreach (var name in methods)
        {
            var request = new ExplainRequest(AttributionMethods.Parse(name), Seed: 1, Base: AttributionMethods.Default);
            var times = Report.Time(repeats, () => Explainer.Explain(explainer, input, request, null, "NCHW"));
            Report.Line(("method", name), ("p50_ms", Report.Percentile(times, 0.5)), ("min_ms", times[0]));
        }
        return 0;
    }

    /// <summary>
    /// Guided backprop and IG(50) with input gradients on ONNX Runtime vs on libtorch's autograd,
    /// the same model and mirror, round after round (the order turning each round): the p50s and
    /// the median of the rounds' ratios.
    /// </summary>
    private static void OrtBackwardVersusAutograd(ModelExplainer ort, FloatTensor input, int repeats)
    {
        if (ort.Engine is not OrtGradientEngine) return;
        var autograd = new ModelExplainer(ort.Mirror, ort.Layers, ort.DefaultLayer, new AutogradEngine(ort.Mirror), ort.MaxBatch);  // shares the mirror: not disposed
        foreach (var (method, rounds) in new[] { ("guided-backprop", repeats), ("integrated-gradients", Math.Max(3, repeats / 10)) })
        {
            var request = new ExplainRequest(AttributionMethods.Get(method), Seed: 1);
            double Time(ModelExplainer engine) => Report.Milliseconds(() => Explainer.Explain(engine, input, request, null, "NCHW"));
            Time(ort);
            Time(autograd);
            var pairs = Enumerable.Range(0, rounds).Select(round =>
            {
                if (round % 2 == 0) return (Ort: Time(ort), Autograd: Time(autograd));
                var first = Time(autograd);
                return (Ort: Time(ort), Autograd: first);
            }).ToArray();
            Report.Line(("engines", method), ("ort_p50_ms", Report.Percentile(pairs.Select(p => p.Ort).Order().ToArray(), 0.5)),
                ("autograd_p50_ms", Report.Percentile(pairs.Select(p => p.Autograd).Order().ToArray(), 0.5)),
                ("ratio", Report.Percentile(pairs.Select(p => p.Ort / p.Autograd).Order().ToArray(), 0.5)));
        }
    }

    /// <summary>
    /// The mirror's forward alone, and forward + backward under each rectifier rule: where explain
    /// time goes; and the engine's forward that integrated gradients and SmoothGrad choose their
    /// target with, as the service runs it (on ONNX Runtime: the import's warmed layer's pass).
    /// </summary>
    private static void Phases(ModelExplainer explainer, FloatTensor input, int repeats)
    {
        var mirror = explainer.Mirror;
        using var x = tensor(input.Data, input.Shape);
        // Each pass, the warm-up included, inside its own scope: its tensors die with it.
        double Median(Action pass) => Report.Percentile(Report.Time(repeats, () =>
        {
            using var scope = NewDisposeScope();
            pass();
        }), 0.5);

        Report.Line(("phase", "forward"), ("p50_ms", Median(() =>
        {
            using var noGrad = no_grad();
            mirror.Forward(x, RectifierRule.Gradient);
        })));
        foreach (var rule in new[] { RectifierRule.Gradient, RectifierRule.GuidedBackprop })
            Report.Line(("phase", "forward and backward, " + rule), ("p50_ms", Median(() =>
            {
                var leaf = x.detach().requires_grad_();
                mirror.Forward(leaf, rule)[mirror.ScoreName].reshape(1, -1)[0, 0].backward();
            })));
        // The import's warm-up of that layer, waited for.
        if (explainer is { Engine: OrtGradientEngine ort, DefaultLayer: { } layer }) ort.LayerBackprop(layer)?.Dispose();
        Report.Line(("phase", "engine forward for a target"), ("p50_ms", Median(() => explainer.Engine.Forward(x, CancellationToken.None))));
    }
}
