using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// Decides at import who computes a model's input gradients: ONNX Runtime (<see cref="OrtBackprop"/>)
/// when its backward graph can be written and gives libtorch autograd's gradients on the probe —
/// guided backprop on the probe itself, plain gradients on a batch of two where the model takes
/// batches — else libtorch autograd.
/// </summary>
public static class OrtBackwardCheck
{
    /// <summary>
    /// Largest relative (L2) difference between the two. Rectifier gates come from each engine's
    /// own activations, so a unit whose activation is ~0 may be open in one and shut in the other:
    /// a few such units change a plain gradient by ~0.1–1%; a wrong rule changes it by far more.
    /// </summary>
    public const double Tolerance = 0.02;

    /// <returns>The backprop, or null; and what computes input gradients, and why (for the log).</returns>
    public static (OrtBackprop?, string) Try(ModelProto model, GraphMirror mirror, Tensor probe, bool batched, Func<byte[], InferenceSession> open)
    {
        OrtBackprop? backprop = null;
        try
        {
            backprop = OrtBackprop.Create(model, mirror, probe.shape, batched, open);
            using var scope = NewDisposeScope();
            var checks = new List<(Tensor Input, RectifierRule Rule)> { (probe, RectifierRule.GuidedBackprop) };
            if (batched) checks.Add((cat([probe, probe.flip(-1)], 0), RectifierRule.Gradient));
            var worst = 0.0;
            foreach (var (input, rule) in checks)
            {
                var recorded = backprop.Forward(input, releaseMemory: input.shape[0] > 1);
                var target = recorded[mirror.ScoreName].reshape(input.shape[0], -1)[0].argmax().item<long>();
                var actual = backprop.InputGradient(input, recorded, target, rule, releaseMemory: input.shape[0] > 1);
                var expected = mirror.InputGradients(input, target, rule);
                var difference = ((actual - expected).norm() / expected.norm()).item<float>();
                if (!(difference <= Tolerance))
                {
                    backprop.Dispose();
                    return (null, $"libtorch autograd (ONNX Runtime's backward differs from it on the probe: {rule}, relative difference {difference:G3})");
                }
                worst = Math.Max(worst, difference);
            }
            return (backprop, $"ONNX Runtime ({backprop.RecordedCount} recorded values; largest relative difference from libtorch autograd on the probe {worst:G3})");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            backprop?.Dispose();
            return (null, $"libtorch autograd (ONNX Runtime's backward: {e.GetType().Name}: {e.Message.Split('\n')[0]})");
        }
    }
}
