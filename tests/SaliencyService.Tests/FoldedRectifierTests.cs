using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// A rectifier's backward folds into the <see cref="NativeOps.WinogradConv"/> input gradient that
/// computed its whole gradient, alone or summed with one other (then the kernel's residual), and
/// never into one that a rule passed on to another tensor as well (an Add's gradient goes to both
/// its inputs): <see cref="BackwardGraph.FoldedRectifier"/>. Judged by float64 autograd under every
/// rule, and by the guided backward's nodes.
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

    [Fact]
    public void A_residual_network_with_folded_rectifiers_gives_the_float64_gradients() =>
        Parity.CheckGradients(ResidualNetwork(), low: -1, high: 1);

    [Fact]
    public void Branches_whose_sum_is_convolved_give_the_float64_gradients() =>
        Parity.CheckGradients(BranchesAdded(), low: -1, high: 1);

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
    private static float[] Weights(int count, int seed) => Parity.RandomInput([count], seed, -0.1f, 0.1f);
}
