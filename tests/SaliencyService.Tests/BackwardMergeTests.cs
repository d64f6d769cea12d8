using Google.Protobuf;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using TorchSharp;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// ONNX Runtime's pass chooses its target inside the graph and, where the model's opset allows,
/// runs forward and backward as one session (<see cref="BackwardMerge"/>). Each way, the scores, the
/// chosen index and the gradients are judged by a float64 mirror.
/// </summary>
public sealed class BackwardMergeTests
{
    private const int Classes = 5;

    /// <summary>Opset 13 merges; opset 12 (ReduceSum and Split took their axes as attributes) keeps two sessions.</summary>
    public static TheoryData<int, bool> Opsets => new() { { 13, true }, { 12, false }, { 20, true } };

    [Theory]
    [MemberData(nameof(Opsets))]
    public void The_first_samples_top_score_is_chosen_in_the_graph_and_explained_for_every_sample(int opset, bool merged)
    {
        using var fixture = new Fixture(opset);
        Assert.Equal(merged, fixture.Backprop.Merged);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([2, 3, 6, 6], 7, -1, 1), [2, 3, 6, 6]);
        var scores = fixture.ReferenceScores(input);
        // The two samples rank differently, so "the first sample's top" is told apart from "each sample's".
        Assert.NotEqual(scores[0].argmax().item<long>(), scores[1].argmax().item<long>());

        var pass = fixture.Backprop.Run(input, -1, RectifierRule.GuidedBackprop);
        var top = scores[0].argmax().item<long>();
        Assert.Equal(top, pass.Target);
        Parity.AssertEqualsFloat64(scores, pass.Result.Scores, "scores");
        Parity.AssertEqualsFloat64(fixture.Reference.InputGradients(input, top, RectifierRule.GuidedBackprop), pass.Gradient, "gradient of the top score");
    }

    [Theory]
    [MemberData(nameof(Opsets))]
    public void A_given_target_is_explained_and_one_outside_the_scores_falls_back_to_the_top(int opset, bool merged)
    {
        using var fixture = new Fixture(opset);
        Assert.Equal(merged, fixture.Backprop.Merged);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([2, 3, 6, 6], 8, -1, 1), [2, 3, 6, 6]);
        var top = fixture.ReferenceScores(input)[0].argmax().item<long>();
        var other = (top + 2) % Classes;

        var given = fixture.Backprop.Run(input, other, RectifierRule.Gradient);
        Assert.Equal(other, given.Target);
        Parity.AssertEqualsFloat64(fixture.Reference.InputGradients(input, other, RectifierRule.Gradient), given.Gradient, "gradient of the given target");

        // The caller's own target check (Targets.Resolve) refuses such an index; the graph's seed stays one-hot meanwhile.
        foreach (var outside in new[] { Classes, Classes + 7, -3 })
            Assert.Equal(top, fixture.Backprop.Run(input, outside, RectifierRule.Gradient).Target);
    }

    [Fact]
    public void A_model_naming_a_value_in_the_backwards_namespace_or_older_than_opset_13_is_not_merged()
    {
        Assert.True(BackwardMerge.Allowed(Model(13).Model()));
        Assert.False(BackwardMerge.Allowed(Model(12).Model()));
        var clashing = Model(13).Model();
        clashing.Graph.Node[0].Output[0] = BackwardGraph.Prefix + "c";
        clashing.Graph.Node[1].Input[0] = BackwardGraph.Prefix + "c";
        Assert.False(BackwardMerge.Allowed(clashing));
        var sparse = Model(13).Model();
        sparse.Graph.SparseInitializer.Add(new SaliencyService.Explain.Onnx.Proto.SparseTensorProto
            { Values = new SaliencyService.Explain.Onnx.Proto.TensorProto { Name = BackwardGraph.Prefix + "constant_0" } });
        Assert.False(BackwardMerge.Allowed(sparse));
    }

    /// <summary>
    /// The backward reads the model's weights where the forward does: the merged graph holds each
    /// once (the stride-1 convolution's flipped kernel and the linear layer's are nodes over them,
    /// which ONNX Runtime folds), and nothing else of a weight's size. A mirror whose values are not
    /// the file's (a wrong one, which the engine check must be able to catch) gets its own copies.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_merged_graph_holds_the_models_weights_once_and_a_mirror_of_other_values_its_own(bool rawData)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = Model(13).Model();
        if (rawData) // as exporters write them: bytes, not a repeated field
            foreach (var weight in model.Graph.Initializer.Where(i => i.FloatData.Count > 0))
            {
                weight.RawData = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(weight.FloatData.ToArray().AsSpan()));
                weight.FloatData.Clear();
            }
        var weights = model.Graph.Initializer.ToDictionary(i => i.Name);
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes([1, 3, 6, 6], batched: true);
        var (backward, graph) = mirror.WriteBackward(model, shapes, RectifierRule.GuidedBackprop);
        Assert.Same(weights["w"], backward.Graph.Initializer.Single(i => i.Name == "w"));
        Assert.Same(weights["fc"], backward.Graph.Initializer.Single(i => i.Name == "fc"));

        var merged = BackwardMerge.Merge(model, backward, graph, [mirror.ScoreName], shapes).Graph.Initializer;
        Assert.Equal(merged.Count, merged.Select(i => i.Name).Distinct().Count());
        var smallest = weights.Values.Min(w => w.CalculateSize());
        Assert.All(merged.Where(i => !weights.ContainsKey(i.Name)), i => Assert.True(i.CalculateSize() < smallest, $"{i.Name}: {i.CalculateSize()} bytes"));

        var other = model.Clone();
        var w = other.Graph.Initializer.Single(i => i.Name == "w");
        var values = rawData ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(w.RawData.Span).ToArray() : w.FloatData.ToArray();
        values[7] *= 1.5f;
        w.FloatData.Clear();
        w.RawData = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        using var otherMirror = GraphMirror.Build(other, "x", "y").Mirror!;
        var (own, _) = otherMirror.WriteBackward(model, shapes, RectifierRule.GuidedBackprop);
        Assert.DoesNotContain(own.Graph.Initializer, i => i.Name == "w");
        Assert.Same(weights["fc"], own.Graph.Initializer.Single(i => i.Name == "fc"));
    }

    /// <summary>
    /// Scores laid out per sample in more than one dimension are seeded by their flat index: [n, 2, 5]
    /// (the batch leads), and [2, 5] from a model whose batch is fixed at one (it does not).
    /// </summary>
    [Theory]
    [InlineData(-1L, new long[] { -1, 2, 5 })]
    [InlineData(1L, new long[] { 2, 5 })]
    public void Scores_of_any_layout_are_seeded_by_their_flat_index(long batch, long[] scoreShape)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = new OnnxTestModel(13, [batch, 3, 6, 6])
            .Initializer("w", Parity.RandomInput([4 * 3 * 9], 3, -0.5f, 0.5f), 4, 3, 3, 3)
            .Initializer("fc", Parity.RandomInput([10 * 144], 4, -0.5f, 0.5f), 10, 144)
            .Initializer("shape", scoreShape, scoreShape.Length)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c"], ["r"])
            .Node("Flatten", ["r"], ["f"])
            .Node("Gemm", ["f", "fc"], ["g"], Int("transB", 1))
            .Node("Reshape", ["g", "shape"], ["y"])
            .Output("y").Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
        using var backprop = OrtBackprop.Create(model, mirror, [1, 3, 6, 6], batched: batch < 0, TestSessions.Open);
        Assert.True(backprop.Merged);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([1, 3, 6, 6], 9, -1, 1), [1, 3, 6, 6]);
        Tensor scores;
        using (no_grad()) scores = reference.Forward(input.to_type(ScalarType.Float64), RectifierRule.Gradient)["y"].reshape(1, 10);
        var top = scores[0].argmax().item<long>();
        foreach (var (asked, explained) in new[] { (-1L, top), ((top + 7) % 10, (top + 7) % 10) })
        {
            var pass = backprop.Run(input, asked, RectifierRule.Gradient);
            Assert.Equal(explained, pass.Target);
            Parity.AssertEqualsFloat64(reference.InputGradients(input, explained, RectifierRule.Gradient), pass.Gradient, $"gradient of score {explained}");
        }
    }

    /// <summary>Conv, ReLU, MaxPool (its indices cross from forward to backward), then a linear layer to five scores; any batch.</summary>
    private static OnnxTestModel Model(int opset) => new OnnxTestModel(opset, [-1, 3, 6, 6])
        .Initializer("w", Parity.RandomInput([4 * 3 * 9], 3, -0.5f, 0.5f), 4, 3, 3, 3)
        .Initializer("fc", Parity.RandomInput([Classes * 36], 4, -0.5f, 0.5f), Classes, 36)
        .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c"], ["r"])
        .Node("MaxPool", ["r"], ["p"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2))
        .Node("Flatten", ["p"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1))
        .Output("y");

    private sealed class Fixture : IDisposable
    {
        private readonly GraphMirror _mirror;

        public Fixture(int opset)
        {
            TorchNativeLoader.EnsureLoaded();
            var model = Model(opset).Model();
            _mirror = GraphMirror.Build(model, "x", "y").Mirror!;
            Reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
            Backprop = OrtBackprop.Create(model, _mirror, [1, 3, 6, 6], batched: true, TestSessions.Open);
        }

        public OrtBackprop Backprop { get; }
        public GraphMirror Reference { get; }

        /// <summary>The float64 mirror's scores, [n, classes].</summary>
        public Tensor ReferenceScores(Tensor input)
        {
            using var noGrad = no_grad();
            return Reference.Forward(input.to_type(ScalarType.Float64), RectifierRule.Gradient)["y"];
        }

        public void Dispose()
        {
            Backprop.Dispose();
            _mirror.Dispose();
            Reference.Dispose();
        }
    }
}
