using SaliencyService.Explain.Mirror;
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
/// backward is preferred (faster); libtorch's float32 autograd is the fallback; a model that
/// neither computes right is not explainable. One float32 engine is never judged by the other:
/// both can be wrong.
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
    /// <param name="truth">The float64 pass (started before, computed meanwhile); its input is the batch the engines run.</param>
    /// <param name="buildOnnxRuntime">
    /// Builds ONNX Runtime's backward for the truth's input (<see cref="OrtBackprop"/>), asked only
    /// when it is tried; what it fails with is why it was not.
    /// </param>
    /// <param name="opened">Told once ONNX Runtime's backward is built, before it is judged.</param>
    public static Verdict Choose(GraphMirror mirror, bool tryOnnxRuntime, FloatTruth truth, Func<OrtBackprop> buildOnnxRuntime, Action<OrtBackprop>? opened = null)
    {
        OrtBackprop? backprop = null;
        var ortSays = "ONNX Runtime backward: turned off (Saliency:Explain:OrtBackward)";
        if (tryOnnxRuntime)
        {
            try
            {
                backprop = buildOnnxRuntime();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                ortSays = $"ONNX Runtime backward: {e.GetType().Name}: {e.Message.Split('\n')[0]}";
            }
        }
        try
        {
            if (backprop is not null) opened?.Invoke(backprop);
            return Judge(mirror, truth, backprop, ortSays);
        }
        catch
        {
            backprop?.Dispose();
            throw;
        }
    }

    private static Verdict Judge(GraphMirror mirror, FloatTruth truth, OrtBackprop? backprop, string ortSays)
    {
        using var scope = NewDisposeScope();
        var input = truth.Input;
        using var secondAlone = backprop is not null && truth.Batched ? new SecondSampleAlone(backprop, truth) : null;
        // ONNX Runtime's gradient is computed while the truth still runs, for the target its own
        // forward ranks first: the truth's target unless the two scores nearly tie (then again).
        BackpropPass? ortPass = null;
        if (backprop is not null) ortPass = backprop.Run(input, -1, FloatTruth.Rule);
        var (reference, target, gradient) = truth.Result;
        var ortDifference = double.PositiveInfinity;
        if (backprop is not null)
        {
            var ortGradient = ortPass!.Target == target ? ortPass.Gradient : backprop.Run(input, target, FloatTruth.Rule).Gradient;
            var judged = Judged(ortGradient, gradient, input, _ => secondAlone!.Gradient);
            ortDifference = judged.Difference;
            ortSays = "ONNX Runtime backward " + judged.Says;
        }
        // The second engine and the float32 floor are only computed when what came before does not settle it.
        if (ortDifference <= Tolerance)
            return new Verdict(backprop, GradientEngines.OnnxRuntime, $"{ortSays} ({Sessions(backprop!)})");

        var torch = Judged(mirror.InputGradients(input, target, FloatTruth.Rule), gradient, input,
            sample => mirror.InputGradients(sample, target, FloatTruth.Rule));
        var allowed = Tolerance;
        var conditioning = "";
        if (torch.Difference > Tolerance)
        {
            // What float32 rounding alone does to this model's gradients (a float64 pass rounding
            // every value to float32): no float32 engine can do better, so that much is allowed.
            var floor = RelativeDifference(reference.InputGradients(truth.Probe, target, FloatTruth.Rule, roundTo: ScalarType.Float32), gradient);
            allowed = Math.Max(Tolerance, 3 * floor);
            conditioning = $"; float32 rounding alone moves this model's gradients by {floor:G3}, so {allowed:G3} was allowed";
        }
        var says = $"{ortSays}, libtorch float32 autograd {torch.Says}{conditioning}";
        if (ortDifference <= allowed) return new Verdict(backprop, GradientEngines.OnnxRuntime, says);
        backprop?.Dispose(); // (not disposed twice: nothing below throws)
        if (torch.Difference <= allowed) return new Verdict(null, GradientEngines.LibTorch, says);
        return new Verdict(null, null, $"No gradient engine reproduces float64 autograd on the probe: {says}.");
    }

    /// <summary>
    /// ONNX Runtime's gradient of the batch of two's second sample alone, for the truth's target,
    /// computed on another thread beside the batch's pass: the truth's pass, on the other core, is
    /// done or nearly by then. Disposing waits for it, so that it never outlives the backprop.
    /// </summary>
    private sealed class SecondSampleAlone(OrtBackprop backprop, FloatTruth truth) : IDisposable
    {
        private readonly Task<Tensor> _gradient = Task.Run(() =>
        {
            using var scope = NewDisposeScope();
            var target = truth.Result.Target;
            return backprop.Run(truth.Input.narrow(0, 1, 1), target, FloatTruth.Rule).Gradient.MoveToOuterDisposeScope();
        });

        public Tensor Gradient => _gradient.GetAwaiter().GetResult();

        public void Dispose()
        {
            try
            {
                _gradient.Wait();
                _gradient.Result.Dispose();
            }
            catch (AggregateException)
            {
                // The truth failed: the judge reports it.
            }
        }
    }

    /// <summary>
    /// How far an engine's gradients on the checked input are from right: the probe's row from the
    /// float64 truth and, in a batch of two, the second row from the engine's own gradient of that
    /// sample alone (a sample's gradient must not depend on the batch it is in). The larger counts.
    /// </summary>
    private static (double Difference, string Says) Judged(Tensor gradients, Tensor truth, Tensor input, Func<Tensor, Tensor> alone)
    {
        var probeRows = truth.shape[0];
        var probe = RelativeDifference(gradients.narrow(0, 0, probeRows), truth);
        var says = $"within {probe:G3} (relative L2) of float64 autograd on the probe";
        if (input.shape[0] == probeRows) return (probe, says);
        var batched = RelativeDifference(gradients.narrow(0, 1, 1), alone(input.narrow(0, 1, 1)));
        return (Math.Max(probe, batched), $"{says}; in a batch of two (the probe, its mirror image) the second sample within {batched:G3} of its gradient alone");
    }

    private static string Sessions(OrtBackprop backprop) => backprop.Merged
        ? $"forward and backward in one session, {backprop.RecordedCount} values between them"
        : $"{backprop.RecordedCount} recorded values";

    private static double RelativeDifference(Tensor actual, Tensor truth)
    {
        var expected = truth.to_type(ScalarType.Float64);
        var norm = expected.norm().item<double>();
        var difference = (actual.to_type(ScalarType.Float64) - expected).norm().item<double>();
        return norm > 0 ? difference / norm : difference == 0 ? 0 : double.PositiveInfinity;
    }
}
