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
/// takes part in. Judged on the probe with guided backprop, and with plain gradients on a batch of
/// two where the model takes batches. ONNX Runtime's backward is preferred (faster); libtorch's
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

        var build = GraphMirror.Build(model, mirror.InputName, mirror.OutputName, ScalarType.Float64);
        using var reference = build.Mirror ?? throw new InvalidOperationException("The float64 mirror could not be built: " + string.Join("; ", build.UnsupportedOperators));
        using var scope = NewDisposeScope();
        var checks = new List<(Tensor Input, RectifierRule Rule)> { (probe, RectifierRule.GuidedBackprop) };
        if (batched) checks.Add((cat([probe, probe.flip(-1)], 0), RectifierRule.Gradient));
        double ortWorst = 0, torchWorst = 0;
        foreach (var (input, rule) in checks)
        {
            using var pass = NewDisposeScope();
            var target = TargetOf(reference, input);
            var truth = reference.InputGradients(input, target, rule);
            if (backprop is not null)
            {
                var release = input.shape[0] > 1;
                var recorded = backprop.Forward(input, release);
                ortWorst = Math.Max(ortWorst, RelativeDifference(backprop.InputGradient(input, recorded, target, rule, release), truth));
                if (!(ortWorst <= Tolerance))
                {
                    ortFailure = $"differs from float64 on the probe ({rule}: relative difference {ortWorst:G3})";
                    backprop.Dispose();
                    backprop = null;
                }
            }
            torchWorst = Math.Max(torchWorst, RelativeDifference(mirror.InputGradients(input, target, rule), truth));
        }

        var torchRight = torchWorst <= Tolerance;
        var torchSays = torchRight
            ? $"libtorch float32 autograd within {torchWorst:G3}"
            : $"libtorch float32 autograd differs from float64 by {torchWorst:G3}";
        if (backprop is not null)
            return new Verdict(backprop, GradientEngines.OnnxRuntime,
                $"ONNX Runtime backward within {ortWorst:G3} (relative L2) of float64 autograd on the probe ({backprop.RecordedCount} recorded values); {torchSays}");
        if (torchRight)
            return new Verdict(null, GradientEngines.LibTorch, $"{torchSays} of float64 autograd on the probe; ONNX Runtime backward: {ortFailure}");
        return new Verdict(null, null, $"No gradient engine reproduces float64 autograd on the probe: {torchSays}; ONNX Runtime backward: {ortFailure}.");
    }

    /// <summary>The first sample's top score: an open path through the network.</summary>
    private static long TargetOf(GraphMirror reference, Tensor input)
    {
        using var noGrad = no_grad();
        return reference.Forward(GraphMirror.InPrecision(input, reference.FloatType), RectifierRule.Gradient)[reference.ScoreName]
            .reshape(input.shape[0], -1)[0].argmax().item<long>();
    }

    private static double RelativeDifference(Tensor actual, Tensor truth)
    {
        var expected = truth.to_type(ScalarType.Float64);
        var norm = expected.norm().item<double>();
        var difference = (actual.to_type(ScalarType.Float64) - expected).norm().item<double>();
        return norm > 0 ? difference / norm : difference == 0 ? 0 : double.PositiveInfinity;
    }
}
