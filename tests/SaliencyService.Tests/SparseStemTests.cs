using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// A ResNet-like stem (a strided 7×7 convolution, its rectifier and a 3×3/2 max pool): the max
/// pool's gradient is at most a quarter non-zero, so a per-sample backward scatters the stem's
/// input gradient from those cells only (<see cref="NativeOps.SparseConvTranspose"/>); a backward
/// that sums its samples first keeps the product and Col2Im, since the sum of their gradients is
/// dense. Both judged by the float64 mirror's gradients under every rule.
/// </summary>
public sealed class SparseStemTests
{
    private const int Classes = 5;

    [Fact]
    public void Per_sample_and_summed_stem_gradients_equal_float64() =>
        Parity.CheckPerSampleAndSummed(Stem().Model(), [3, 3, 31, 29], seed: 21, target: 2);

    [Fact]
    public void Only_a_per_sample_backward_scatters_the_stems_gradient_from_its_non_zero_cells()
    {
        TorchNativeLoader.EnsureLoaded();
        var model = Stem().Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes([1, 3, 31, 29], batched: true);
        var (perSample, _) = mirror.WriteBackward(model, shapes, RectifierRule.GuidedBackprop);
        var (summed, _) = mirror.WriteBackward(model, shapes, RectifierRule.GuidedBackprop, summed: true);
        if (!NativeOps.Available)
        {
            Assert.DoesNotContain(perSample.Graph.Node, n => n.OpType == NativeOps.SparseConvTranspose);
            return;
        }
        var scatter = Assert.Single(perSample.Graph.Node, n => n.OpType == NativeOps.SparseConvTranspose);
        Assert.Equal(NativeOps.Domain, scatter.Domain);
        // Its gradient is the max pool's, the rectifier's gate folded in; its kernel the stem's own weights.
        var pool = Assert.Single(perSample.Graph.Node, n => n.Output.Contains(scatter.Input[0]));
        Assert.Equal(NativeOps.MaxPoolGrad, pool.OpType);
        Assert.Equal("w1", scatter.Input[1]);
        Assert.DoesNotContain(perSample.Graph.Node, n => n.OpType is "MatMul" or NativeOps.Col2Im);
        Assert.DoesNotContain(summed.Graph.Node, n => n.OpType == NativeOps.SparseConvTranspose);
        Assert.Contains(summed.Graph.Node, n => n.OpType == NativeOps.Col2Im);
    }

    /// <summary>
    /// A convolution with more weights than <see cref="NativeOps.MaxSparseWeights"/> keeps the
    /// product and Col2Im even from a max pool's gradient: each non-zero cell would read them anew.
    /// </summary>
    [Fact]
    public void A_convolution_whose_weights_leave_the_cache_keeps_the_product()
    {
        TorchNativeLoader.EnsureLoaded();
        const int inputs = 64, outputs = 128;
        Assert.True(inputs * outputs * 25 > NativeOps.MaxSparseWeights);
        // 5×5: a 3×3 one's input gradient would be the kernel's transposed stride-2 form.
        var model = new OnnxTestModel(13, [-1, inputs, 9, 9])
            .Initializer("w1", Parity.RandomInput([outputs * inputs * 25], 26, -0.1f, 0.1f), outputs, inputs, 5, 5)
            .Initializer("fc", Parity.RandomInput([Classes * outputs], 27, -0.5f, 0.5f), Classes, outputs)
            .Node("Conv", ["x", "w1"], ["c1"], Ints("pads", 2, 2, 2, 2), Ints("strides", 2, 2))
            .Node("Relu", ["c1"], ["r1"])
            .Node("MaxPool", ["r1"], ["p"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2))
            .Node("GlobalAveragePool", ["p"], ["g"]).Node("Flatten", ["g"], ["f"])
            .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y").Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var (backward, _) = mirror.WriteBackward(model, mirror.BatchShapes([1, inputs, 9, 9], batched: true), RectifierRule.GuidedBackprop);
        Assert.DoesNotContain(backward.Graph.Node, n => n.OpType == NativeOps.SparseConvTranspose);
        Assert.Equal(NativeOps.Available, backward.Graph.Node.Any(n => n.OpType == NativeOps.Col2Im));
    }

    /// <summary>An odd-sized input (31 × 29): the stem's windows and the pool's reach past its edges.</summary>
    private static OnnxTestModel Stem() => new OnnxTestModel(13, [-1, 3, 31, 29])
        .Initializer("w1", Parity.RandomInput([8 * 3 * 49], 22, -0.3f, 0.3f), 8, 3, 7, 7)
        .Initializer("b1", Parity.RandomInput([8], 23, -0.1f, 0.1f), 8)
        .Initializer("w2", Parity.RandomInput([8 * 8 * 9], 24, -0.3f, 0.3f), 8, 8, 3, 3)
        .Initializer("fc", Parity.RandomInput([Classes * 8], 25, -0.5f, 0.5f), Classes, 8)
        .Node("Conv", ["x", "w1", "b1"], ["c1"], Ints("pads", 3, 3, 3, 3), Ints("strides", 2, 2))
        .Node("Relu", ["c1"], ["r1"])
        .Node("MaxPool", ["r1"], ["p"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1))
        .Node("Conv", ["p", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c2"], ["r2"])
        .Node("GlobalAveragePool", ["r2"], ["g"])
        .Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1))
        .Output("y");
}
