using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>The gradient engines a model can use.</summary>
public static class GradientEngines
{
    /// <summary>The served forward on ONNX Runtime, then the mirror's backward written as an ONNX graph (<see cref="OrtBackprop"/>).</summary>
    public const string OnnxRuntime = "onnxruntime";

    /// <summary>libtorch autograd through the float32 mirror.</summary>
    public const string LibTorch = "libtorch";
}

/// <summary>
/// Decides at import who computes a model's gradients, by judging each candidate against the
/// truth: libtorch autograd through a float64 mirror, which no float32 kernel (oneDNN's included)
/// takes part in. Judged with guided backprop on the probe, or on a batch of two (the probe and its
/// mirror image) where the model takes batches; an ill-conditioned model, whose gradients float32 rounding
/// alone moves, is allowed that much more. ONNX Runtime's backward is preferred (faster); libtorch's
/// float32 autograd is the fallback; a model that neither computes right is not explainable.
/// One float32 engine is never judged by the other: both can be wrong.
/// </summary>
public static class GradientEngineCheck
{
    /// <summary>
    /// Largest relative (L2) difference from float64. Rectifier gates come from each engine's own
    /// activations, so a unit whose pre-activation is ~0 may be open in one and shut in the other:
    /// a few such units change a plain gradient by ~0.1–1%; a wrong kernel changes it by far more.
    /// </summary>
    public const double Tolerance = 0.02;

    /// <summary>The engine chosen: the ONNX Runtime backprop when it was, and the descriptor's engine and reason.</summary>
    public sealed record Verdict(OrtBackprop? Backprop, string? Engine, string Reason);

    /// <param name="tryOnnxRuntime">Whether ONNX Runtime's backward is a candidate (<c>Saliency:Explain:OrtBackward</c>).</param>
    public static Verdict Choose(ModelProto model, GraphMirror mirror, Tensor probe, bool batched, bool tryOnnxRuntime,
        Func<byte[], InferenceSession> open)
    {
        OrtBackprop? backprop = null;
        string ortFailure = "turned off (Saliency:Explain:OrtBackward)";
        if (tryOnnxRuntime)
        {
            try
            {
                backprop = OrtBackprop.Create(model, mirror, probe.shape, batched, open);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                ortFailure = $"{e.GetType().Name}: {e.Message.Split('\n')[0]}";
            }
        }

        try
        {
            return Judge(model, mirror, probe, batched, backprop, ortFailure);
        }
        catch
        {
            backprop?.Dispose();
            throw;
        }
    }

    private static Verdict Judge(ModelProto model, GraphMirror mirror, Tensor probe, bool batched, OrtBackprop? backprop, string ortFailure)
    {
        var build = GraphMirror.Build(model, mirror.InputName, mirror.OutputName, ScalarType.Float64);
        using var reference = build.Mirror ?? throw new InvalidOperationException("The float64 mirror could not be built: " + string.Join("; ", build.UnsupportedOperators));
        using var scope = NewDisposeScope();
        // One float64 pass (the import's costliest step): guided backprop exercises every gate and
        // floor of the backward; a batch of two where the model takes batches exercises batching.
        var checks = new List<(Tensor Input, RectifierRule Rule)> { (batched ? cat([probe, probe.flip(-1)], 0) : probe, RectifierRule.GuidedBackprop) };
        var truths = checks.Select(c =>
        {
            // The first sample's top score (an open path through the network), taken from the truth's own forward.
            long target = 0;
            var truth = reference.InputGradients(c.Input, values => target = values[reference.ScoreName].reshape(c.Input.shape[0], -1)[0].argmax().item<long>(),
                c.Rule);
            return (c.Input, c.Rule, Target: target, Truth: truth);
        }).ToList();

        // Each engine's largest difference over the checks; the second engine and the float32
        // floor are only computed when what came before does not settle it.
        var ortWorst = backprop is null ? double.PositiveInfinity : truths.Max(t =>
        {
            using var pass = NewDisposeScope();
            var release = t.Input.shape[0] > 1;
            var recorded = backprop.Forward(t.Input, release);
            return RelativeDifference(backprop.InputGradient(t.Input, recorded, t.Target, t.Rule, release), t.Truth);
        });
        var ortSays = backprop is null ? $"ONNX Runtime backward: {ortFailure}" : $"ONNX Runtime backward within {ortWorst:G3}";
        if (ortWorst <= Tolerance)
            return new Verdict(backprop, GradientEngines.OnnxRuntime,
                $"{ortSays} (relative L2) of float64 autograd on the probe ({backprop!.RecordedCount} recorded values)");

        var torchWorst = truths.Max(t => RelativeDifference(mirror.InputGradients(t.Input, t.Target, t.Rule), t.Truth));
        var allowed = Tolerance;
        var conditioning = "";
        if (torchWorst > Tolerance)
        {
            // What float32 rounding alone does to this model's gradients (a float64 pass rounding
            // every value to float32): no float32 engine can do better, so that much is allowed.
            var floor = truths.Max(t => RelativeDifference(reference.InputGradients(t.Input, t.Target, t.Rule, roundTo: ScalarType.Float32), t.Truth));
            allowed = Math.Max(Tolerance, 3 * floor);
            conditioning = $"; float32 rounding alone moves this model's gradients by {floor:G3}, so {allowed:G3} was allowed";
        }
        var says = $"{ortSays}, libtorch float32 autograd within {torchWorst:G3} (relative L2) of float64 autograd on the probe{conditioning}";
        if (ortWorst <= allowed) return new Verdict(backprop, GradientEngines.OnnxRuntime, says);
        backprop?.Dispose(); // (not disposed twice: nothing below throws)
        if (torchWorst <= allowed) return new Verdict(null, GradientEngines.LibTorch, says);
        return new Verdict(null, null, $"No gradient engine reproduces float64 autograd on the probe: {says}.");
    }

    private static double RelativeDifference(Tensor actual, Tensor truth)
    {
        var expected = truth.to_type(ScalarType.Float64);
        var norm = expected.norm().item<double>();
        var difference = (actual.to_type(ScalarType.Float64) - expected).norm().item<double>();
        return norm > 0 ? difference / norm : difference == 0 ? 0 : double.PositiveInfinity;
    }
}
