using Google.Protobuf;
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
/// A merged pass runs its forward's stride-1 3×3 convolutions that <see cref="WinogradConvolutions"/>
/// takes as <see cref="NativeOps.WinogradConv"/> (F(2×2) tiles), with the bias, a residual Add and the
/// Relu that follow fused (<see cref="ForwardWinograd"/>), and its backward's (F(4×4)): every one where
/// the pass sums a batch, up to 256 × 256 channels for one sample. Judged by the float64 mirror:
/// the scores, the summed gradients and one sample's.
/// </summary>
public sealed class ForwardWinogradTests
{
    private const int Classes = 5, Width = 128;

    [Fact]
    public void Passes_with_their_convolutions_by_winograd_give_the_float64_scores_and_gradients()
    {
        TorchNativeLoader.EnsureLoaded();
        var model = ResidualBlock().Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
        using var backprop = OrtBackprop.Create(model, mirror, [1, 3, 6, 6], batched: true, TestSessions.Open);
        Assert.True(backprop.Merged);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([4, 3, 6, 6], 21, -1, 1), [4, 3, 6, 6]);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var pass = backprop.Run(input, 2, rule, summed: true);
            Parity.AssertEqualsFloat64(reference.Forward(input.to_type(ScalarType.Float64), rule)["y"], pass.Result.Scores, $"{rule}, scores");
            Parity.AssertEqualsFloat64(reference.InputGradients(input, 2, rule).sum([0], keepdim: true), pass.Gradient, $"{rule}, summed");
            var sample = input[..1];
            var single = backprop.Run(sample, 2, rule);
            Parity.AssertEqualsFloat64(reference.Forward(sample.to_type(ScalarType.Float64), rule)["y"], single.Result.Scores, $"{rule}, one sample's scores");
            Parity.AssertEqualsFloat64(reference.InputGradients(sample, 2, rule), single.Gradient, $"{rule}, one sample");
        }
    }

    [Fact]
    public void Passes_with_their_stride_2_convolutions_by_the_kernel_give_the_float64_scores_and_gradients()
    {
        TorchNativeLoader.EnsureLoaded();
        var model = Downsampling().Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
        using var backprop = OrtBackprop.Create(model, mirror, [1, 16, 9, 11], batched: true, TestSessions.Open);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([3, 16, 9, 11], 22, -1, 1), [3, 16, 9, 11]);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var pass = backprop.Run(input, 1, rule, summed: true);
            Parity.AssertEqualsFloat64(reference.Forward(input.to_type(ScalarType.Float64), rule)["y"], pass.Result.Scores, $"{rule}, scores");
            Parity.AssertEqualsFloat64(reference.InputGradients(input, 1, rule).sum([0], keepdim: true), pass.Gradient, $"{rule}, summed");
            var sample = input[..1];
            Parity.AssertEqualsFloat64(reference.InputGradients(sample, 1, rule), backprop.Run(sample, 1, rule).Gradient, $"{rule}, one sample");
        }
    }

    [Fact]
    public void Stride_2_convolutions_and_their_input_gradients_run_as_the_kernels_stride_2_forms()
    {
        var (merged, graph) = OneSamplePass(Downsampling().Model());
        var kernels = merged.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
        if (!NativeOps.Available)
        {
            Assert.Empty(kernels);
            return;
        }
        Assert.Equal(WinogradConvolutions.OneSample, graph.Winograd);
        long Attribute(NodeProto node, string name) => node.Attribute.SingleOrDefault(a => a.Name == name)?.I ?? 0;
        // Forward: both, each with its bias and rectifier fused.
        var forward = kernels.Where(n => !IsBackward(n)).ToList();
        Assert.Equal(["w1", "w2"], forward.Select(n => n.Input[1]));
        Assert.All(forward, n => Assert.Equal((2L, 0L, 1L), (Attribute(n, "stride"), Attribute(n, "transposed"), Attribute(n, "relu"))));
        // Backward: both input gradients, transposed, on the forward's own weights; 9 × 11 → 5 × 6 needs no
        // output padding, 5 × 6 → 3 × 3 one column; w2's gradient gated by the rectifier after w1.
        var backward = kernels.Where(IsBackward).ToDictionary(n => n.Input[1]);
        Assert.Equal(["w1", "w2"], backward.Keys.Order());
        Assert.All(backward.Values, n => Assert.Equal((2L, 1L), (Attribute(n, "stride"), Attribute(n, "transposed"))));
        Assert.Equal([0L, 0L], backward["w1"].Attribute.Single(a => a.Name == "output_padding").Ints);
        Assert.Equal([0L, 1L], backward["w2"].Attribute.Single(a => a.Name == "output_padding").Ints);
        Assert.Equal(2, Attribute(backward["w2"], "rectify"));
        Assert.DoesNotContain(merged.Graph.Node, n => n.OpType is "MatMul" or "Col2Im" or "ConvTranspose" || n.OpType == "Conv" && n.Input[1] is "w1" or "w2");
    }

    [Fact]
    public void The_wide_convolutions_are_fused_with_what_only_they_feed()
    {
        var merged = MergedSummed(ResidualBlock());
        var winograd = merged.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv && !n.Name.StartsWith(BackwardGraph.Prefix, StringComparison.Ordinal)).ToList();
        if (!NativeOps.Available)
        {
            Assert.Empty(winograd);
            return;
        }
        // The 3-channel convolution stays ONNX Runtime's; the first wide one takes its Relu, the second its residual Add and Relu.
        Assert.Single(merged.Graph.Node, n => n.OpType == "Conv" && n.Input[1] == "w0");
        Assert.Equal(2, winograd.Count);
        Assert.Equal(["r0", "w1", "b1"], winograd[0].Input);
        Assert.Equal(["r1"], winograd[0].Output);
        // Without a bias of its own, the second leaves it out as a tensor of no elements: only a last input may be missing.
        Assert.Equal(["r1", "w2", "c2/no_bias", "r1"], winograd[1].Input);
        Assert.Equal([0L], merged.Graph.Initializer.Single(i => i.Name == "c2/no_bias").Dims);
        Assert.Equal(["r2"], winograd[1].Output);
        Assert.All(winograd, n => Assert.Equal(1, n.Attribute.Single(a => a.Name == "relu").I));
        Assert.DoesNotContain(merged.Graph.Node, n => n.Output.Contains("c1") || n.Output.Contains("c2") || n.Output.Contains("s2"));
        Assert.Equal(NativeOps.Domain, winograd[0].Domain);
    }

    [Fact]
    public void A_value_read_elsewhere_a_broadcast_residual_a_stride_or_narrow_channels_keep_onnx_runtimes_nodes()
    {
        var model = new OnnxTestModel(13, [-1, Width, 6, 6])
            .Initializer("w1", Weights(Width * Width * 9, 1), Width, Width, 3, 3)
            .Initializer("w2", Weights(Width * Width * 9, 2), Width, Width, 3, 3)
            .Initializer("w3", Weights(Width * Width * 9, 3), Width, Width, 3, 3)
            .Initializer("w4", Weights(8 * Width * 9, 4), 8, Width, 3, 3)
            .Initializer("shift", Weights(Width, 5), Width, 1, 1)
            .Initializer("fc", Weights(Classes * (3 * Width + 8), 6), Classes, 3 * Width + 8)
            // c1 is read by its Relu and by the output's concatenation: the Relu is not fused.
            .Node("Conv", ["x", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c1"], ["r1"])
            // The Add broadcasts a [K, 1, 1] shift: not a residual.
            .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1)).Node("Add", ["c2", "shift"], ["s2"])
            // Strides of 2 and 1: not the kernel's.
            .Node("Conv", ["x", "w3"], ["c3"], Ints("pads", 1, 1, 1, 1), Ints("strides", 2, 1))
            // 8 output channels: below the kernel's minimum.
            .Node("Conv", ["x", "w4"], ["c4"], Ints("pads", 1, 1, 1, 1))
            .Node("GlobalAveragePool", ["c1"], ["g1"]).Node("GlobalAveragePool", ["s2"], ["g2"])
            .Node("GlobalAveragePool", ["c3"], ["g3"]).Node("GlobalAveragePool", ["c4"], ["g4"])
            .Node("Concat", ["g1", "g2", "g3", "g4"], ["g"], Int("axis", 1)).Node("Flatten", ["g"], ["f"])
            .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");
        var merged = MergedSummed(model, [1, Width, 6, 6]);
        var forward = merged.Graph.Node.Where(n => !n.Name.StartsWith(BackwardGraph.Prefix, StringComparison.Ordinal)).ToList();
        var winograd = forward.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
        if (!NativeOps.Available)
        {
            Assert.Empty(winograd);
            return;
        }
        Assert.Equal(2, winograd.Count);
        Assert.All(winograd, n => Assert.Equal(("tile", WinogradConvolutions.SmallTile), n.Attribute.Select(a => (a.Name, a.I)).Single()));
        Assert.Equal(["c1", "c2"], winograd.SelectMany(n => n.Output));
        Assert.Contains(forward, n => n.OpType == "Relu" && n.Input[0] == "c1");
        Assert.Contains(forward, n => n.OpType == "Add" && n.Output[0] == "s2");
        Assert.Equal(["c3", "c4"], forward.Where(n => n.OpType == "Conv").SelectMany(n => n.Output));
    }

    [Fact]
    public void A_one_sample_pass_takes_F4x4_up_to_256_by_256_channels_and_F2x2_beyond()
    {
        const int wide = 6 * Width; // 768 × 128 channels: more products than 256 × 256
        var (merged, graph) = OneSamplePass(TwoConvolutions(Width, Width, wide, 6));
        var kernels = merged.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
        if (!NativeOps.Available)
        {
            Assert.Equal(WinogradConvolutions.None, graph.Winograd);
            Assert.Empty(kernels);
            return;
        }
        Assert.Equal(WinogradConvolutions.OneSample, graph.Winograd);
        static long Tile(NodeProto kernel) => kernel.Attribute.Single(a => a.Name == "tile").I;
        var forward = kernels.Where(n => !IsBackward(n)).ToDictionary(n => n.Input[1], Tile);
        var backward = kernels.Where(IsBackward).ToDictionary(k => ForwardWeights(merged, k), Tile);
        // Forward: both with F(2×2). Backward: w1's input gradient (128 × 128) with F(4×4), w2's (128 × 768) with F(2×2).
        Assert.Equal(new Dictionary<string, long> { ["w1"] = WinogradConvolutions.SmallTile, ["w2"] = WinogradConvolutions.SmallTile }, forward);
        Assert.Equal(new Dictionary<string, long> { ["w1"] = WinogradConvolutions.LargeTile, ["w2"] = WinogradConvolutions.SmallTile }, backward);
        Assert.DoesNotContain(merged.Graph.Node, n => n.OpType == "Conv" && n.Attribute.All(a => a.Name != "group" || a.I == 1));
    }

    /// <summary>The forward weights a kernel reads: a backward's takes them transposed and flipped (Slice of Transpose).</summary>
    private static string ForwardWeights(ModelProto merged, NodeProto kernel)
    {
        var producers = merged.Graph.Node.SelectMany(n => n.Output.Select(o => (Output: o, Node: n))).ToDictionary(p => p.Output, p => p.Node);
        return producers.TryGetValue(kernel.Input[1], out var slice) ? producers[slice.Input[0]].Input[0] : kernel.Input[1];
    }

    private static bool IsBackward(NodeProto node) =>
        node.Name.StartsWith(BackwardGraph.Prefix, StringComparison.Ordinal) || node.Output[0].StartsWith(BackwardGraph.Prefix, StringComparison.Ordinal);

    [Fact]
    public void A_raced_pass_takes_a_convolution_where_the_kernel_won_the_race_on_this_host()
    {
        // 32 → 48 → 48 channels at 12²: two shapes forward (48 × 32, 48 × 48), two backward (the input gradients' 48 × 48 and 32 × 48).
        const int narrow = 32, wide = 48;
        var race = new WinogradRace(TestSessions.Open);
        var (merged, graph) = OneSamplePass(TwoConvolutions(narrow, wide, wide, 12), race);
        var kernels = merged.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
        if (!NativeOps.Available)
        {
            Assert.Empty(kernels);
            return;
        }
        Assert.Same(race, graph.Winograd.Race);
        // Each race ran (both tiles timed against ONNX Runtime's convolution) and decided its convolution.
        foreach (var (outputs, inputs) in new[] { (wide, narrow), (wide, wide), (narrow, wide) })
        {
            var outcome = race.Race(outputs, inputs, 12, 12);
            Assert.True(new[] { outcome.Convolution, outcome.Kernel2, outcome.Kernel4 }.All(t => double.IsFinite(t) && t > 0) && outcome.Reorders >= 0, $"{outcome}");
        }
        bool Forward(string weights) => kernels.Any(n => n.Input[1] == weights && !IsBackward(n));
        Assert.Equal(race.Faster(wide, narrow, 12, 12, WinogradConvolutions.SmallTile, forward: true), Forward("w1"));
        Assert.Equal(race.Faster(wide, wide, 12, 12, WinogradConvolutions.SmallTile, forward: true), Forward("w2"));
        // The backward's input gradients: w2's flipped kernel maps 48 channels to 48, w1's 48 to 32.
        var backward = kernels.Where(IsBackward).Select(k => ForwardWeights(merged, k)).ToList();
        Assert.Equal(race.Faster(wide, wide, 12, 12, WinogradConvolutions.LargeTile, forward: false) ? 1 : 0, backward.Count(w => w == "w2"));
        Assert.Equal(race.Faster(narrow, wide, 12, 12, WinogradConvolutions.LargeTile, forward: false) ? 1 : 0, backward.Count(w => w == "w1"));
        Assert.Equal(backward.Count, backward.Count(w => w is "w1" or "w2"));
    }

    [Fact]
    public void A_raced_pass_takes_a_stride_2_form_where_it_won_the_race_on_this_host()
    {
        var race = new WinogradRace(TestSessions.Open);
        var (merged, _) = OneSamplePass(Downsampling().Model(), race);
        var kernels = merged.Graph.Node.Where(n => n.OpType == NativeOps.WinogradConv).ToList();
        if (!NativeOps.Available)
        {
            Assert.Empty(kernels);
            return;
        }
        // Each race ran (four sides timed) and decided its convolution, forward and backward.
        foreach (var (weights, outputs, inputs, height, width) in new[] { ("w1", 24L, 16L, 9L, 11L), ("w2", 32L, 24L, 5L, 6L) })
        {
            var outcome = race.RaceStrided(outputs, inputs, height, width);
            Assert.True(new[] { outcome.Convolution, outcome.Kernel, outcome.Columns, outcome.Transposed }.All(t => double.IsFinite(t) && t > 0), $"{outcome}");
            Assert.Equal(race.FasterStrided(outputs, inputs, height, width, forward: true), kernels.Any(n => n.Input[1] == weights && !IsBackward(n)));
            Assert.Equal(race.FasterStrided(outputs, inputs, height, width, forward: false), kernels.Any(n => n.Input[1] == weights && IsBackward(n)));
        }
    }

    [Fact]
    public void A_race_whose_kernel_cannot_run_keeps_onnx_runtimes_convolution()
    {
        // Sessions without the engine's kernels registered: the kernel's side of the race fails to open.
        // (A shape of its own: races are kept for the process, by shape.)
        var race = new WinogradRace(model => new InferenceSession(model.ToByteArray()));
        var outcome = race.Race(23, 21, 5, 7);
        Assert.Equal(double.PositiveInfinity, outcome.Ratio(WinogradConvolutions.SmallTile, forward: true));
        Assert.False(race.Faster(23, 21, 5, 7, WinogradConvolutions.LargeTile, forward: false));
        Assert.Null(WinogradConvolutions.For(nativeKernels: true, summed: false, race).ForwardTile(23, 21, 5, 7));
        Assert.Equal(double.PositiveInfinity, race.RaceStrided(23, 21, 5, 7).Ratio(forward: false));
        Assert.False(WinogradConvolutions.For(nativeKernels: true, summed: false, race).TakesStrided(23, 21, 5, 7, forward: true));
        Assert.Equal(WinogradConvolutions.SmallTile, WinogradConvolutions.For(nativeKernels: true, summed: false).ForwardTile(23, 21, 5, 7));
    }

    [Fact]
    public void A_race_where_onnx_runtime_has_no_blocked_layout_charges_no_reorders()
    {
        // ONNX Runtime builds without the blocked layout have no reorder operators: here they are made
        // unknown, so the reorders' sessions fail to open. (A shape of its own: races are kept by shape.)
        var race = new WinogradRace(model =>
        {
            foreach (var node in model.Graph.Node.Where(n => n.Domain == "com.microsoft.nchwc")) node.Domain = "com.example.none";
            return TestSessions.Open(model);
        });
        var outcome = race.Race(29, 27, 6, 5);
        Assert.Equal(0, outcome.Reorders);
        if (NativeOps.Available)
            Assert.True(new[] { outcome.Convolution, outcome.Kernel2, outcome.Kernel4 }.All(t => double.IsFinite(t) && t > 0), $"{outcome}");
        // With the layout (ONNX Runtime's x64 builds, on AVX2 and later) and the kernels to race, the reorders are timed: more than nothing.
        if (NativeOps.Available && System.Runtime.Intrinsics.X86.Avx2.IsSupported)
            Assert.True(new WinogradRace(TestSessions.Open).Race(48, 32, 7, 6).Reorders > 0);
    }

    /// <summary>
    /// A 3-channel convolution and rectifier, then a 128-channel residual block (convolution with a
    /// bias, rectifier, convolution without one, the block's input added, rectifier), global pooling
    /// and a linear layer; any batch.
    /// </summary>
    private static OnnxTestModel ResidualBlock() => new OnnxTestModel(13, [-1, 3, 6, 6])
        .Initializer("w0", Weights(Width * 3 * 9, 1), Width, 3, 3, 3)
        .Initializer("w1", Weights(Width * Width * 9, 2), Width, Width, 3, 3)
        .Initializer("b1", Weights(Width, 3), Width)
        .Initializer("w2", Weights(Width * Width * 9, 4), Width, Width, 3, 3)
        .Initializer("fc", Weights(Classes * Width, 6), Classes, Width)
        .Node("Conv", ["x", "w0"], ["c0"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c0"], ["r0"])
        .Node("Conv", ["r0", "w1", "b1"], ["c1"], Ints("pads", 1, 1, 1, 1), Ints("strides", 1, 1), Ints("kernel_shape", 3, 3)).Node("Relu", ["c1"], ["r1"])
        .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1), Ints("dilations", 1, 1), Int("group", 1))
        .Node("Add", ["c2", "r1"], ["s2"]).Node("Relu", ["s2"], ["r2"])
        .Node("GlobalAveragePool", ["r2"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");

    /// <summary>
    /// Two padded 3×3 convolutions of stride 2 with biases and rectifiers, 16 → 24 → 32 channels from
    /// 9 × 11 (odd: 5 × 6, then 3 × 3), global pooling and a linear layer; any batch.
    /// </summary>
    private static OnnxTestModel Downsampling() => new OnnxTestModel(13, [-1, 16, 9, 11])
        .Initializer("w1", Weights(24 * 16 * 9, 7), 24, 16, 3, 3).Initializer("b1", Weights(24, 8), 24)
        .Initializer("w2", Weights(32 * 24 * 9, 9), 32, 24, 3, 3).Initializer("b2", Weights(32, 10), 32)
        .Initializer("fc", Weights(Classes * 32, 11), Classes, 32)
        .Node("Conv", ["x", "w1", "b1"], ["c1"], Ints("pads", 1, 1, 1, 1), Ints("strides", 2, 2)).Node("Relu", ["c1"], ["r1"])
        .Node("Conv", ["r1", "w2", "b2"], ["c2"], Ints("pads", 1, 1, 1, 1), Ints("strides", 2, 2), Ints("kernel_shape", 3, 3)).Node("Relu", ["c2"], ["r2"])
        .Node("GlobalAveragePool", ["r2"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");

    /// <summary>
    /// Two padded 3×3 convolutions with rectifiers, <paramref name="inputs"/> → <paramref name="middle"/> →
    /// <paramref name="outputs"/> channels at <paramref name="side"/>², global pooling and a linear layer; any batch.
    /// </summary>
    private static ModelProto TwoConvolutions(int inputs, int middle, int outputs, int side) => new OnnxTestModel(13, [-1, inputs, side, side])
        .Initializer("w1", Weights(middle * inputs * 9, 1), middle, inputs, 3, 3)
        .Initializer("w2", Weights(outputs * middle * 9, 2), outputs, middle, 3, 3)
        .Initializer("fc", Weights(Classes * outputs, 3), Classes, outputs)
        .Node("Conv", ["x", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c1"], ["r1"])
        .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c2"], ["r2"])
        .Node("GlobalAveragePool", ["r2"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y").Model();

    /// <summary>A one-sample guided pass of <paramref name="model"/>, merged with its forward; its convolutions raced where <paramref name="race"/> is given.</summary>
    private static (ModelProto Merged, BackwardGraph Graph) OneSamplePass(ModelProto model, WinogradRace? race = null)
    {
        TorchNativeLoader.EnsureLoaded();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var input = model.Graph.Input[0].Type.TensorType.Shape.Dim.Select(d => d.DimValue).ToArray();
        var shapes = mirror.BatchShapes([1, .. input[1..]], batched: true);
        var (backward, graph) = mirror.WriteBackward(model, shapes, RectifierRule.GuidedBackprop, race: race);
        return (BackwardMerge.Merge(model, backward, graph, [mirror.ScoreName], shapes), graph);
    }

    /// <summary>Weights that keep each layer's outputs about the size of its inputs.</summary>
    private static float[] Weights(int count, int seed) => Parity.RandomInput([count], seed, -0.05f, 0.05f);

    private static ModelProto MergedSummed(OnnxTestModel builder, long[]? sampleShape = null)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = builder.Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes(sampleShape ?? [1, 3, 6, 6], batched: true);
        var (backward, graph) = mirror.WriteBackward(model, shapes, RectifierRule.Gradient, summed: true);
        Assert.Equal(NativeOps.Available ? WinogradConvolutions.Summed : WinogradConvolutions.None, graph.Winograd);
        return BackwardMerge.Merge(model, backward, graph, [mirror.ScoreName], shapes);
    }
}
