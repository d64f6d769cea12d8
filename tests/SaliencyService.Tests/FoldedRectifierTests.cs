using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// A rectifier's backward folds into the kernel of ours that computed its whole gradient — a
/// <see cref="NativeOps.WinogradConv"/>, a strided convolution's <see cref="NativeOps.Col2Im"/> or
/// a strided depthwise one's <see cref="NativeOps.DepthwiseCol2Im"/> — alone or summed with one
/// other gradient (then the kernel's residual, <see cref="BackwardGraph.Sum"/>), and never into one
/// that a rule passed on to another tensor as well (an Add's gradient goes to both its inputs):
/// <see cref="BackwardGraph.FoldedRectifier"/>. Judged by float64 autograd under every rule, and by
/// the guided backward's nodes.
/// </summary>
public sealed class FoldedRectifierTests
{
    private const int Width = 32, Classes = 5;

    /// <summary>
    /// A stem, a residual block whose skip is the stem's rectifier, another convolution and its
    /// rectifier, global pooling and a linear layer (32 channels: within a one-sample pass's
    /// <see cref="WinogradConvolutions.OneSample"/>).
    /// </summary>
    private static OnnxTestModel ResidualNetwork() => new OnnxTestModel(13, [2, 3, 8, 8])
        .Initializer("w0", Weights(Width * 3 * 9, 1), Width, 3, 3, 3)
        .Initializer("w1", Weights(Width * Width * 9, 2), Width, Width, 3, 3)
        .Initializer("w2", Weights(Width * Width * 9, 3), Width, Width, 3, 3)
        .Initializer("w3", Weights(Width * Width * 9, 4), Width, Width, 3, 3)
        .Initializer("fc", Weights(Classes * Width, 5), Classes, Width)
        .Node("Conv", ["x", "w0"], ["c0"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c0"], ["r0"])
        .Node("Conv", ["r0", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c1"], ["r1"])
        .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1)).Node("Add", ["c2", "r0"], ["s2"]).Node("Relu", ["s2"], ["r2"])
        .Node("Conv", ["r2", "w3"], ["c3"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c3"], ["r3"])
        .Node("GlobalAveragePool", ["r3"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");

    /// <summary>
    /// Two branches from the stem's rectifier, a rectified one and a plain one, added and then
    /// convolved: the sum's gradient, one convolution's, reaches the rectified branch's rectifier
    /// whole and the plain branch too.
    /// </summary>
    private static OnnxTestModel BranchesAdded() => new OnnxTestModel(13, [2, 3, 8, 8])
        .Initializer("w0", Weights(Width * 3 * 9, 11), Width, 3, 3, 3)
        .Initializer("wa", Weights(Width * Width * 9, 12), Width, Width, 3, 3)
        .Initializer("wb", Weights(Width * Width * 9, 13), Width, Width, 3, 3)
        .Initializer("wc", Weights(Width * Width * 9, 14), Width, Width, 3, 3)
        .Initializer("fc", Weights(Classes * Width, 15), Classes, Width)
        .Node("Conv", ["x", "w0"], ["c0"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c0"], ["r0"])
        .Node("Conv", ["r0", "wa"], ["ca"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["ca"], ["a"])
        .Node("Conv", ["r0", "wb"], ["b"], Ints("pads", 1, 1, 1, 1))
        .Node("Add", ["a", "b"], ["s"])
        .Node("Conv", ["s", "wc"], ["cc"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["cc"], ["rc"])
        .Node("GlobalAveragePool", ["rc"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");

    /// <summary><see cref="StridedResidualNetwork"/> at 32 channels (its 3×3 convolutions within a one-sample pass's Winograd ones).</summary>
    private static OnnxTestModel StridedNetwork(int side = 3) => StridedResidualNetwork.Nodes(new OnnxTestModel(13, [2, 3, 16, 16])
        .Initializer("w0", Weights(Width * 3 * 9, 21), Width, 3, 3, 3)
        .Initializer("w1", Weights(Width * Width * 9, 22), Width, Width, 3, 3)
        .Initializer("w2", Weights(Width * Width * 9, 23), Width, Width, 3, 3)
        .Initializer("w3", Weights(Width * Width * side * side, 24), Width, Width, side, side)
        .Initializer("w4", Weights(Width * Width * 9, 25), Width, Width, 3, 3)
        .Initializer("wd", Weights(Width * Width, 26), Width, Width, 1, 1)
        .Initializer("fc", Weights(Classes * Width, 27), Classes, Width), side);

    /// <summary>
    /// MobileNet's pattern: a ReLU6 (Clip to [0, 6]) before a strided depthwise convolution, whose
    /// input gradient alone is that rectifier's gradient, then another ReLU6 and a 1×1 convolution.
    /// </summary>
    private static OnnxTestModel DepthwiseNetwork() => new OnnxTestModel(13, [2, 3, 12, 12])
        .Initializer("w0", Weights(Width * 3 * 9, 31, 0.4f), Width, 3, 3, 3)
        .Initializer("dw", Weights(Width * 9, 32, 0.4f), Width, 1, 3, 3)
        .Initializer("w2", Weights(16 * Width, 33, 0.4f), 16, Width, 1, 1)
        .Initializer("fc", Weights(Classes * 16, 34), Classes, 16)
        .Initializer("low", [0f]).Initializer("high", [6f])
        .Node("Conv", ["x", "w0"], ["c0"], Ints("pads", 1, 1, 1, 1)).Node("Clip", ["c0", "low", "high"], ["r0"])
        .Node("Conv", ["r0", "dw"], ["c1"], Int("group", Width), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1))
        .Node("Clip", ["c1", "low", "high"], ["r1"])
        .Node("Conv", ["r1", "w2"], ["c2"])
        .Node("GlobalAveragePool", ["c2"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");

    [Fact]
    public void A_residual_network_with_folded_rectifiers_gives_the_float64_gradients() =>
        Parity.CheckGradients(ResidualNetwork(), low: -1, high: 1);

    [Fact]
    public void Branches_whose_sum_is_convolved_give_the_float64_gradients() =>
        Parity.CheckGradients(BranchesAdded(), low: -1, high: 1);

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void A_strided_network_with_folded_sums_and_rectifiers_gives_the_float64_gradients(int side) =>
        Parity.CheckGradients(StridedNetwork(side), low: -1, high: 1);

    [Fact]
    public void A_depthwise_network_with_a_folded_relu6_gives_the_float64_gradients() =>
        Parity.CheckGradients(DepthwiseNetwork(), low: -1, high: 1);

    [Fact]
    public void Each_rectifier_after_a_convolutions_input_gradient_folds_into_it()
    {
        if (GuidedBackward(ResidualNetwork()) is not var (nodes, kernels)) return;
        // c3's, c2's and c1's input gradients (the stem's 3 channels stay ONNX Runtime's), each
        // gated by the rectifier whose output it is the gradient of: r2, r1, then r0 with the skip's
        // gradient (r2's gated one, which the block's Add passed on) as its residual.
        Assert.Equal(3, kernels.Count);
        Assert.All(kernels, k => Assert.Equal(2, k.Attribute.Single(a => a.Name == "rectify").I));
        Assert.Equal(["r2", "r1", "r0"], kernels.Select(k => k.Input[4]));
        Assert.Equal(kernels[0].Output[0], kernels[2].Input[3]);
        Assert.DoesNotContain(nodes, n => n.OpType == "Sum");
        // No other gate reads those rectifiers' outputs (r3's, whose gradient comes from the pooling, is ONNX Runtime's).
        Assert.All(nodes.Where(n => n.Input.Any(i => i is "r0" or "r1" or "r2")), n => Assert.Equal(NativeOps.WinogradConv, n.OpType));
        Assert.Contains(nodes, n => n.Input.Contains("r3"));
    }

    [Fact]
    public void A_gradient_passed_on_to_another_tensor_is_not_gated_in_place()
    {
        if (GuidedBackward(BranchesAdded()) is not var (nodes, kernels)) return;
        // cc's input gradient is the sum's, which goes to a's rectifier and to b's convolution
        // alike: it stays ungated, read by both. wa's and wb's input gradients both reach r0: one
        // folds r0's rectifier, the other is its residual.
        Assert.Equal(3, kernels.Count);
        var shared = Assert.Single(kernels, k => nodes.Count(n => n.Input.Contains(k.Output[0])) == 2);
        Assert.Equal(2, shared.Input.Count);
        var folded = Assert.Single(kernels, k => k.Input.Count == 5);
        Assert.Equal("r0", folded.Input[4]);
        Assert.Contains(kernels, k => k != shared && k.Input.Count == 2 && k.Output[0] == folded.Input[3]);
    }

    /// <summary>
    /// The strided c3's input gradient, 3×3 by the kernel's transposed stride-2 form, 5×5 as a
    /// product and the scatter of its columns, takes r2's sum and rectifier.
    /// </summary>
    [Theory]
    [InlineData(3, NativeOps.WinogradConv, 3)]
    [InlineData(5, NativeOps.Col2Im, 1)]
    public void Sums_and_rectifiers_after_a_strided_convolutions_input_gradient_fold_into_it(int side, string kernel, int residual)
    {
        if (GuidedBackward(StridedNetwork(side)) is not var (nodes, _)) return;
        var producers = nodes.ToDictionary(n => n.Output[0]);
        // r2's gradient: c3's input gradient adds the shortcut's transposed convolution as its
        // residual and gates by r2.
        var scatter = Assert.Single(nodes, n => n.OpType == kernel && n.Input.Count > residual && (kernel == NativeOps.Col2Im || n.Attribute.Any(a => a is { Name: "stride", I: 2 })));
        Assert.Equal("ConvTranspose", producers[scatter.Input[residual]].OpType);
        Assert.Equal("r2", scatter.Input[residual + 1]);
        Assert.Equal(2, scatter.Attribute.Single(a => a.Name == "rectify").I);
        // m's gradient: c1's input gradient adds the skip's (that gated scatter, which the block's
        // Add passed on to c2's input gradient too) as its residual; the max pool's kernel reads
        // it and gates by r0. No sum is written anywhere.
        var maxPool = Assert.Single(nodes, n => n.OpType == NativeOps.MaxPoolGrad);
        var c1 = producers[maxPool.Input[1]];
        Assert.Equal(NativeOps.WinogradConv, c1.OpType);
        Assert.Equal(scatter.Output[0], c1.Input[3]);
        Assert.Equal(4, c1.Input.Count);
        Assert.Contains(nodes, n => n.OpType == NativeOps.WinogradConv && n.Input[0] == scatter.Output[0]);
        Assert.DoesNotContain(nodes, n => n.OpType == "Sum");
        // Every node comes after the producers of its inputs.
        var made = nodes.SelectMany(n => n.Input).Where(i => !producers.ContainsKey(i)).ToHashSet();
        foreach (var node in nodes)
        {
            Assert.All(node.Input, i => Assert.Contains(i, made));
            made.Add(node.Output[0]);
        }
    }

    [Fact]
    public void A_relu6_before_a_strided_depthwise_convolution_folds_into_its_scatter()
    {
        if (GuidedBackward(DepthwiseNetwork()) is not var (nodes, _)) return;
        var scatter = Assert.Single(nodes, n => n.OpType == NativeOps.DepthwiseCol2Im);
        Assert.Equal(["r0"], scatter.Input.Skip(3));
        Assert.Equal(2, scatter.Attribute.Single(a => a.Name == "rectify").I);
        Assert.Equal(6f, scatter.Attribute.Single(a => a.Name == "upper").F);
        Assert.DoesNotContain(nodes, n => n.Input.Contains("r0") && n != scatter);
    }

    /// <summary>
    /// The nodes of the guided backward of a one-sample pass and its WinogradConv nodes; null
    /// without the engine's kernels, whose backward then has none.
    /// </summary>
    private static (List<NodeProto> Nodes, List<NodeProto> Kernels)? GuidedBackward(OnnxTestModel builder)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = builder.Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes(builder.InputShape, batched: true);
        var (backward, _) = mirror.WriteBackward(model, shapes, RectifierRule.GuidedBackprop);
        var kernels = backward.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
        if (NativeOps.Available) return ([.. backward.Graph.Node], kernels);
        Assert.Empty(kernels);
        return null;
    }

    /// <summary>Weights that keep each layer's outputs about the size of its inputs.</summary>
    private static float[] Weights(int count, int seed, float bound = 0.1f) => Parity.RandomInput([count], seed, -bound, bound);
}
