using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// Integrated gradients and SmoothGrad average their samples' gradients, so ONNX Runtime's pass can
/// sum a batch inside the graph: the backward's last linear, per-sample ops (the first
/// convolution's input gradient, the input normalisation's scale) then run once, on the sum
/// (<see cref="BackwardGraph.SumsBeforeProducts"/>). Judged by the float64 mirror's per-sample
/// gradients, summed.
/// </summary>
public sealed class BackwardSampleSumTests
{
    private const int Classes = 5;

    /// <summary>Each model, merged into one session (opset 13) and as two (opset 12).</summary>
    public static TheoryData<bool, int> Cases => new() { { true, 13 }, { true, 12 }, { false, 13 }, { false, 12 } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_batchs_summed_gradients_equal_the_float64_sum_of_its_samples(bool convolutionFirst, int opset)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = (convolutionFirst ? ConvolutionFirst(opset) : RectifierFirst(opset)).Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
        using var backprop = OrtBackprop.Create(model, mirror, [1, 3, 8, 8], batched: true, TestSessions.Open);
        Assert.Equal(opset >= BackwardMerge.OldestOpset, backprop.Merged);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([5, 3, 8, 8], 11, -1, 1), [5, 3, 8, 8]);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var pass = backprop.Run(input, 3, rule, summed: true);
            Assert.Equal(3L, pass.Target);
            Assert.Equal([5L, Classes], pass.Result.Scores.shape);
            Assert.Equal([1L, 3, 8, 8], pass.Gradient.shape);
            Parity.AssertEqualsFloat64(reference.InputGradients(input, 3, rule).sum([0], keepdim: true), pass.Gradient, $"{rule}, summed");
            // The same pass per sample still gives each sample's gradient.
            Parity.AssertEqualsFloat64(reference.InputGradients(input, 3, rule), backprop.Run(input, 3, rule).Gradient, $"{rule}, per sample");
        }
    }

    [Fact]
    public void A_summed_backward_that_cannot_be_built_leaves_the_sum_to_the_rules_own_pass()
    {
        TorchNativeLoader.EnsureLoaded();
        var model = ConvolutionFirst(13).Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
        var refused = 0;
        InferenceSession Open(ModelProto graph) =>
            graph.Graph.Node.Any(IsSampleSum) ? throw new NotSupportedException($"refused ({++refused})") : TestSessions.Open(graph);
        using var backprop = OrtBackprop.Create(model, mirror, [1, 3, 8, 8], batched: true, Open);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([4, 3, 8, 8], 12, -1, 1), [4, 3, 8, 8]);
        var pass = backprop.Run(input, 1, RectifierRule.Gradient, summed: true);
        Assert.Equal(1, refused);
        Assert.Equal([1L, 3, 8, 8], pass.Gradient.shape);
        Parity.AssertEqualsFloat64(reference.InputGradients(input, 1, RectifierRule.Gradient).sum([0], keepdim: true), pass.Gradient, "summed after the run");
    }

    [Fact]
    public void The_sum_comes_before_the_first_convolutions_input_gradient_and_after_the_rectifiers_gate()
    {
        var (backward, graph) = WriteSummed(ConvolutionFirst(13));
        Assert.True(graph.SumsBeforeProducts);
        var sum = Assert.Single(backward.Graph.Node, IsSampleSum);
        // What is summed is the rectifier's gate: it reads the forward's values, so it runs per sample.
        var gate = backward.Graph.Node.Single(n => n.Output.Contains(sum.Input[0]));
        Assert.Contains(gate.Input, input => graph.ForwardInputs.Contains(input) || Upstream(backward.Graph, input).Any(graph.ForwardInputs.Contains));
        // After it: the strided convolution's input gradient and the normalisation's scale, reading no forward value.
        var after = Downstream(backward.Graph, sum.Output[0]);
        Assert.Contains(after, n => n.OpType == "Div");
        Assert.Contains(after, n => n.OpType == (NativeOps.Available ? NativeOps.Col2Im : "ConvTranspose"));
        Assert.DoesNotContain(after, n => n.Input.Any(graph.ForwardInputs.Contains));
        Assert.Equal([1L, 3, 8, 8], backward.Graph.Output.Single(o => o.Name == BackwardGraph.InputGradient).Type.TensorType.Shape.Dim.Select(d => d.DimValue));
    }

    /// <summary>
    /// A summed backward runs its stride-1 3×3 convolutions' input gradients by Winograd's kernel
    /// (where the kernels are built), and so does a per-sample one for convolutions up to 256 × 256
    /// channels; the float64 sums above and ForwardWinogradTests judge what they compute.
    /// </summary>
    [Fact]
    public void Both_backwards_take_their_padded_3x3_input_gradients_by_winograd()
    {
        TorchNativeLoader.EnsureLoaded();
        var model = ConvolutionFirst(13).Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes([1, 3, 8, 8], batched: true);
        var (summed, _) = mirror.WriteBackward(model, shapes, RectifierRule.Gradient, summed: true);
        var (perSample, _) = mirror.WriteBackward(model, shapes, RectifierRule.Gradient);
        // The strided convolution's gradient is a Col2Im in both; the stride-1 one (16 × 16 channels,
        // within WinogradConvolutions.OneSampleLargeTileProducts) is the kernel's in both, with F(4×4) tiles.
        foreach (var backward in new[] { summed, perSample })
        {
            var kernels = backward.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
            Assert.Equal(NativeOps.Available ? 1 : 0, kernels.Count);
            Assert.All(kernels, k => Assert.Equal(WinogradConvolutions.LargeTile, k.Attribute.Single(a => a.Name == "tile").I));
            // (The rectifiers' gates are per-channel 1×1 convolutions: groups, not counted.)
            Assert.Equal(NativeOps.Available ? 0 : 1, backward.Graph.Node.Count(n => n.OpType == "Conv" && !n.Attribute.Any(a => a.Name == "group" && a.I > 1)));
        }
    }

    [Fact]
    public void A_backward_that_meets_a_rectifier_first_only_sums_its_output()
    {
        var (backward, graph) = WriteSummed(RectifierFirst(13));
        Assert.False(graph.SumsBeforeProducts);
        var sum = Assert.Single(backward.Graph.Node, IsSampleSum);
        Assert.Equal([BackwardGraph.InputGradient], Downstream(backward.Graph, sum.Output[0]).SelectMany(n => n.Output));
    }

    [Fact]
    public void A_fixed_batch_is_not_summed_in_the_graph()
    {
        TorchNativeLoader.EnsureLoaded();
        var model = new OnnxTestModel(13, [2, 3, 8, 8]).Initializer("w", Parity.RandomInput([4 * 3 * 9], 3, -0.5f, 0.5f), 4, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c"], ["r"]).Node("GlobalAveragePool", ["r"], ["g"])
            .Node("Flatten", ["g"], ["y"]).Output("y").Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes([2, 3, 8, 8], batched: false);
        Assert.Throws<ArgumentException>(() => mirror.WriteBackward(model, shapes, RectifierRule.Gradient, summed: true));
    }

    /// <summary>Normalised input, a strided convolution, a rectifier, a plain convolution, a rectifier, a max pool and a linear layer; any batch.</summary>
    private static OnnxTestModel ConvolutionFirst(int opset) => new OnnxTestModel(opset, [-1, 3, 8, 8])
        .Initializer("mean", [0.4f, 0.5f, 0.6f], 1, 3, 1, 1)
        .Initializer("std", [0.2f, 0.25f, 0.3f], 1, 3, 1, 1)
        .Initializer("w1", Parity.RandomInput([16 * 3 * 9], 3, -0.5f, 0.5f), 16, 3, 3, 3)
        .Initializer("w2", Parity.RandomInput([16 * 16 * 9], 4, -0.2f, 0.2f), 16, 16, 3, 3)
        .Initializer("fc", Parity.RandomInput([Classes * 64], 5, -0.25f, 0.25f), Classes, 64)
        .Node("Sub", ["x", "mean"], ["centred"])
        .Node("Div", ["centred", "std"], ["normalised"])
        .Node("Conv", ["normalised", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1), Ints("strides", 2, 2))
        .Node("Relu", ["c1"], ["r1"])
        .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c2"], ["r2"])
        .Node("MaxPool", ["r2"], ["p"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2))
        .Node("Flatten", ["p"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1))
        .Output("y");

    /// <summary>A rectifier on the input itself, then a convolution and a linear layer: nothing after the gate to sum before.</summary>
    private static OnnxTestModel RectifierFirst(int opset) => new OnnxTestModel(opset, [-1, 3, 8, 8])
        .Initializer("w", Parity.RandomInput([4 * 3 * 9], 6, -0.5f, 0.5f), 4, 3, 3, 3)
        .Initializer("fc", Parity.RandomInput([Classes * 4], 7, -0.5f, 0.5f), Classes, 4)
        .Node("Relu", ["x"], ["r"])
        .Node("Conv", ["r", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
        .Node("GlobalAveragePool", ["c"], ["g"])
        .Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1))
        .Output("y");

    /// <summary>The node that sums the batch: the engine's kernel where it is built (NativeOpsTests), else ReduceSum.</summary>
    private static bool IsSampleSum(NodeProto node) => node.OpType == (NativeOps.Available ? NativeOps.SampleSum : "ReduceSum");

    private static (ModelProto Backward, BackwardGraph Graph) WriteSummed(OnnxTestModel builder)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = builder.Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        return mirror.WriteBackward(model, mirror.BatchShapes([1, 3, 8, 8], batched: true), RectifierRule.Gradient, summed: true);
    }

    /// <summary>The nodes that read <paramref name="value"/>, directly or through others.</summary>
    private static List<NodeProto> Downstream(GraphProto graph, string value)
    {
        var reached = new HashSet<string>(StringComparer.Ordinal) { value };
        var nodes = new List<NodeProto>();
        foreach (var node in graph.Node.Where(n => n.Input.Any(reached.Contains))) // in order: a node's inputs come first
        {
            nodes.Add(node);
            reached.UnionWith(node.Output);
        }
        return nodes;
    }

    /// <summary>The values <paramref name="value"/> is computed from.</summary>
    private static HashSet<string> Upstream(GraphProto graph, string value)
    {
        var reached = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([value]);
        while (pending.TryPop(out var next))
            foreach (var node in graph.Node.Where(n => n.Output.Contains(next)))
            foreach (var input in node.Input.Where(reached.Add))
                pending.Push(input);
        return reached;
    }
}
