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
/// truth (<see cref="FloatTruth"/>: libtorch autograd through a float64 mirror); an ill-conditioned
/// model, whose gradients float32 rounding alone moves, is allowed that much more. ONNX Runtime's
/// backward is preferred (faster); libtorch's float32 autograd is the fallback; a model that neither computes right is not explainable.
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
    /// <param name="truth">The float64 pass (started before, computed meanwhile).</param>
    public static Verdict Choose(ModelProto model, GraphMirror mirror, Tensor probe, bool batched, bool tryOnnxRuntime,
        Func<byte[], InferenceSession> open, FloatTruth truth)
    {
        OrtBackprop? backprop = null;
        var ortSays = "ONNX Runtime backward: turned off (Saliency:Explain:OrtBackward)";
        if (tryOnnxRuntime)
        {
            try
            {
                backprop = OrtBackprop.Create(model, mirror, probe.shape, batched, open);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                ortSays = $"ONNX Runtime backward: {e.GetType().Name}: {e.Message.Split('\n')[0]}";
            }
        }
        try
        {
            return Judge(mirror, truth.Result, backprop, ortSays);
        }
        catch
        {
            backprop?.Dispose();
            throw;
        }
    }

    private static Verdict Judge(GraphMirror mirror, FloatTruth.Pass truth, OrtBackprop? backprop, string ortSays)
    {
        using var scope = NewDisposeScope();
        var (reference, input, target, gradient) = truth;
        // The second engine and the float32 floor are only computed when what came before does not settle it.
        var ortDifference = double.PositiveInfinity;
        if (backprop is not null)
        {
            var release = input.shape[0] > 1;
            var recorded = backprop.Forward(input, release);
            ortDifference = RelativeDifference(backprop.InputGradient(input, recorded, target, FloatTruth.Rule, release), gradient);
            ortSays = $"ONNX Runtime backward within {ortDifference:G3}";
        }
        if (ortDifference <= Tolerance)
            return new Verdict(backprop, GradientEngines.OnnxRuntime,
                $"{ortSays} (relative L2) of float64 autograd on the probe ({backprop!.RecordedCount} recorded values)");

        var torchDifference = RelativeDifference(mirror.InputGradients(input, target, FloatTruth.Rule), gradient);
        var allowed = Tolerance;
        var conditioning = "";
        if (torchDifference > Tolerance)
        {
            // What float32 rounding alone does to this model's gradients (a float64 pass rounding
            // every value to float32): no float32 engine can do better, so that much is allowed.
            var floor = RelativeDifference(reference.InputGradients(input, target, FloatTruth.Rule, roundTo: ScalarType.Float32), gradient);
            allowed = Math.Max(Tolerance, 3 * floor);
            conditioning = $"; float32 rounding alone moves this model's gradients by {floor:G3}, so {allowed:G3} was allowed";
        }
        var says = $"{ortSays}, libtorch float32 autograd within {torchDifference:G3} (relative L2) of float64 autograd on the probe{conditioning}";
        if (ortDifference <= allowed) return new Verdict(backprop, GradientEngines.OnnxRuntime, says);
        backprop?.Dispose(); // (not disposed twice: nothing below throws)
        if (torchDifference <= allowed) return new Verdict(null, GradientEngines.LibTorch, says);
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
