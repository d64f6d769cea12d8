using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests.Ops;

/// <summary>
/// Runs a test model's input gradients on ONNX Runtime (its forward, then the backward graph the
/// rules write) and compares them with libtorch's autograd through the mirror — the independent
/// reference for the rules — under every rectifier rule, for each sample's top score as the target, on a batch.
/// </summary>
public static class GradientParity
{
    /// <summary>Largest difference relative to the reference's largest magnitude.</summary>
    public const double Tolerance = 1e-4;

    public static void Check(OnnxTestModel builder, int seed = 1, float low = -2, float high = 2)
    {
        var model = builder.Model();
        var build = GraphMirror.Build(model, "x", model.Graph.Output[0].Name);
        Assert.True(build.Mirror is not null, "unsupported: " + string.Join("; ", build.UnsupportedOperators));
        using var mirror = build.Mirror!;
        using var backprop = OrtBackprop.Create(model, mirror, builder.InputShape, batched: true, bytes => new InferenceSession(bytes));
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput(builder.InputShape, seed, low, high), builder.InputShape);
        var recorded = backprop.Forward(input);
        var scores = recorded[mirror.ScoreName].reshape(input.shape[0], -1);
        // Each sample's top score (an open rectifier) and the median of the first (below a saturated ReLU6).
        var first = scores[0];
        var median = first.sub(first.median()).abs().argmin().item<long>();
        var tested = 0;
        foreach (var target in new[] { first.argmax().item<long>(), scores[^1].argmax().item<long>(), median }.Distinct())
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var actual = backprop.InputGradient(input, recorded, target, rule);
            var leaf = input.detach().requires_grad_();
            mirror.Forward(leaf, rule)[mirror.ScoreName].reshape(input.shape[0], -1).select(1, target).sum().backward();
            var expected = leaf.grad!;
            Assert.Equal(expected.shape, actual.shape);
            var scale = expected.abs().max().item<float>();
            var difference = (actual - expected).abs().max().item<float>();
            Assert.True(difference <= Tolerance * scale || scale == 0 && difference == 0, $"target {target}, {rule}: max difference {difference} at scale {scale}");
            if (scale > 0) tested++;
        }
        Assert.True(tested >= 3, $"only {tested} of the cases had a non-zero gradient: the model tests too little");
    }
}
