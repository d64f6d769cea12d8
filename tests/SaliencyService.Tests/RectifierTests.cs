using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>The rectifier rules on hand-computed values (Captum-style tiny cases).</summary>
public sealed class RectifierTests
{
    private static readonly float[] X = [-1f, 0.5f, 3f, 7f];
    private static readonly float[] GradOut = [2f, -1f, 4f, 5f];

    private static float[] Backward(double upper, RectifierRule rule)
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        var x = tensor(X).requires_grad_();
        var y = Rectifier.Apply(x, upper, rule);
        y.backward([tensor(GradOut)]);
        return x.grad!.data<float>().ToArray();
    }

    [Fact]
    public void Relu_rules()
    {
        Assert.Equal([0f, -1f, 4f, 5f], Backward(double.PositiveInfinity, RectifierRule.Gradient));
        Assert.Equal([0f, 0f, 4f, 5f], Backward(double.PositiveInfinity, RectifierRule.GuidedBackprop));
        Assert.Equal([2f, 0f, 4f, 5f], Backward(double.PositiveInfinity, RectifierRule.Deconvnet));
    }

    [Fact]
    public void Relu6_rules_gate_on_zero_below_and_six_above()
    {
        Assert.Equal([0f, -1f, 4f, 0f], Backward(6, RectifierRule.Gradient));
        Assert.Equal([0f, 0f, 4f, 0f], Backward(6, RectifierRule.GuidedBackprop));
        Assert.Equal([2f, 0f, 4f, 5f], Backward(6, RectifierRule.Deconvnet));
    }

    [Fact]
    public void Forward_values_do_not_depend_on_the_rule()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        foreach (var rule in Enum.GetValues<RectifierRule>())
            Assert.Equal([0f, 0.5f, 3f, 6f], Rectifier.Apply(tensor(X), 6, rule).data<float>().ToArray());
    }

    [Fact]
    public void Concurrent_guided_passes_agree_with_a_single_thread()
    {
        var expected = Backward(double.PositiveInfinity, RectifierRule.GuidedBackprop);
        var results = new float[16][];
        Parallel.For(0, results.Length, i => results[i] = Backward(double.PositiveInfinity, i % 2 == 0 ? RectifierRule.GuidedBackprop : RectifierRule.Gradient));
        for (var i = 0; i < results.Length; i += 2) Assert.Equal(expected, results[i]);
    }
}
