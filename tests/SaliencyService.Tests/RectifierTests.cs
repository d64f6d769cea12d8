using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
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

    /// <summary>Where the backward graph's gate switches: nothing, the smallest normal float, 6 and the float just below it.</summary>
    private static readonly float[] Edges = [-1f, 0f, 1.1754944e-38f, 1e-30f, 3f, MathF.BitDecrement(6f), 6f, 7f, 1e30f];

    /// <summary>
    /// The gate ONNX Runtime's backward graph writes for y = relu(x) or clip(x, 0, 6), exactly on
    /// those values: each element's own score is explained in turn, so its gradient is the gate
    /// there and zero elsewhere. Sixteen channels take the blocked-layout gate (depthwise 1×1
    /// convolutions), three the HardSigmoid one.
    /// </summary>
    [Theory]
    [InlineData(16, double.PositiveInfinity)]
    [InlineData(16, 6.0)]
    [InlineData(3, double.PositiveInfinity)]
    [InlineData(3, 6.0)]
    public void The_backward_graphs_gate_is_exact_where_it_switches(int channels, double upper)
    {
        TorchNativeLoader.EnsureLoaded();
        long[] shape = [1, channels, 1, Edges.Length];
        var builder = new OnnxTestModel(13, shape);
        if (double.IsPositiveInfinity(upper)) builder.Node("Relu", ["x"], ["y"]);
        else builder.Initializer("min", [0f]).Initializer("max", [(float)upper]).Node("Clip", ["x", "min", "max"], ["y"]);
        var model = builder.Output("y").Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var backprop = OrtBackprop.Create(model, mirror, shape, batched: true, TestSessions.Open);
        using var scope = NewDisposeScope();
        var values = Enumerable.Range(0, channels).SelectMany(_ => Edges).ToArray();
        var input = tensor(values, shape);
        foreach (var rule in new[] { RectifierRule.Gradient, RectifierRule.GuidedBackprop })
            for (var element = 0; element < values.Length; element++)
            {
                var open = values[element] > 0 && values[element] < upper;
                var expected = new float[values.Length];
                expected[element] = open ? 1 : 0;
                Assert.Equal(expected, backprop.Run(input, element, rule).Gradient.data<float>().ToArray());
            }
    }
}
