using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// The import check writes ONNX Runtime's backward for shapes told by a forward on the probe (the
/// float64 truth's) and one on a batch of two (ONNX Runtime's, <see cref="OrtValueShapes"/>). They
/// must be the shapes the mirror's own forwards tell. (Every operator's test model compares ONNX
/// Runtime's shapes with the mirror's too: <see cref="Parity.Check"/>.)
/// </summary>
public sealed class OrtValueShapesTests
{
    [Theory]
    [InlineData("mini_resnet")]
    [InlineData("mini_mobilenet")]
    [InlineData("seed_cnn")]
    public void The_backward_is_written_for_the_shapes_the_mirrors_own_forwards_tell(string fixture)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = OnnxFile.Load(TestPaths.Fixture(fixture, "model.onnx"));
        var (input, output) = (model.Graph.Input[0].Name, model.Graph.Output[0].Name);
        using var mirror = GraphMirror.Build(model, input, output).Mirror!;
        using var reference = GraphMirror.Build(model, input, output, ScalarType.Float64).Mirror!;
        using var scope = NewDisposeScope();
        var sample = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(fixture, "input0.tensor.npy")), long.MaxValue);
        var probe = tensor(sample.Data, sample.Shape);

        var probeShapes = reference.ShapesOf(reference.Forward(probe.to_type(ScalarType.Float64), RectifierRule.Gradient));
        var ofTwo = OrtValueShapes.Run(model, [.. mirror.ActivationNames], input, cat([probe, probe.flip(-1)], 0), ScalarType.Float32, TestSessions.Open);
        var actual = GraphMirror.BatchShapes(probeShapes, ofTwo);

        var expected = mirror.BatchShapes(probe.shape, batched: true);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        Assert.All(expected, p => Assert.Equal(p.Value, actual[p.Key]));
        Assert.Contains(actual.Values, i => i.Shape.Contains(-1));

        // These graphs' shapes are static: ONNX Runtime infers the same as it loads them, with no run.
        var inspected = new List<Explain.Onnx.Proto.ModelProto>();
        InferenceSession Inspect(Explain.Onnx.Proto.ModelProto graph)
        {
            inspected.Add(graph);
            return OnnxSessionFactory.Inspect(graph);
        }
        var inferred = OrtValueShapes.Inferred(model, [.. mirror.ActivationNames], input, [2, .. probe.shape[1..]], ScalarType.Float32, Inspect);
        Assert.NotNull(inferred);
        Assert.Equal(ofTwo.Keys.Order(), inferred.Keys.Order());
        Assert.All(ofTwo, p => Assert.Equal(p.Value, inferred[p.Key]));
        // So are the probe's: the backward is then written before the float64 forward has run.
        var inferredProbe = OrtValueShapes.Inferred(model, [.. mirror.ActivationNames], input, probe.shape, ScalarType.Float32, Inspect);
        Assert.NotNull(inferredProbe);
        var early = GraphMirror.BatchShapes(inferredProbe, inferred);
        Assert.Equal(expected.Keys.Order(), early.Keys.Order());
        Assert.All(expected, p => Assert.Equal(p.Value, early[p.Key]));
        // Inferred from the weights' types and shapes alone: ONNX Runtime was handed none of their elements.
        static bool IsWeight(Explain.Onnx.Proto.TensorProto w) => Explain.Tensors.FloatTensor.ElementCount(w.Dims) >= OrtValueShapes.WeightElements;
        Assert.Contains(model.Graph.Initializer, IsWeight);
        Assert.Equal(2, inspected.Count);
        Assert.All(inspected, graph => Assert.DoesNotContain(graph.Graph.Initializer, IsWeight));
    }

    [Fact]
    public void Small_integer_values_are_read_whatever_their_width_and_those_that_follow_the_batch_are_not_constants()
    {
        TorchNativeLoader.EnsureLoaded();
        // Flatten written with shape arithmetic, as exporters write it: [batch, -1] from Shape and Gather.
        var model = new OnnxTestModel(13, [-1, 3, 4, 4])
            .Initializer("zero", [0L])
            .Initializer("rest", [-1L], 1)
            .Node("Shape", ["x"], ["s"])
            .Node("Cast", ["s"], ["s32"], Int("to", (long)Explain.Onnx.Proto.TensorProto.Types.DataType.Int32))
            .Node("Gather", ["s32", "zero"], ["n"], Int("axis", 0))
            .Node("Cast", ["n"], ["n64"], Int("to", (long)Explain.Onnx.Proto.TensorProto.Types.DataType.Int64))
            .Node("Unsqueeze", ["n64", "zero1"], ["n1"])
            .Node("Concat", ["n1", "rest"], ["shape"], Int("axis", 0))
            .Node("Reshape", ["x", "shape"], ["y"])
            .Output("y")
            .Initializer("zero1", [0L], 1)
            .Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var scope = NewDisposeScope();
        var two = tensor(Parity.RandomInput([2, 3, 4, 4], 3, -1, 1), [2, 3, 4, 4]);

        var ofTwo = OrtValueShapes.Run(model, [.. mirror.ActivationNames], "x", two, ScalarType.Float32, TestSessions.Open);
        Assert.Equal([2L, 3, 4, 4], ofTwo["s32"].Values!); // int32 in the model, int64 in the mirror
        Assert.Equal(ScalarType.Int64, ofTwo["s32"].Type);
        Assert.Equal([2L, -1], ofTwo["shape"].Values!);
        Assert.Equal([2L, 48], ofTwo["y"].Shape);
        Assert.Equal(ScalarType.Float32, ofTwo["y"].Type);
        foreach (var (name, own) in mirror.ShapesOf(mirror.Forward(two, RectifierRule.Gradient)))
            Assert.Equal(own, ofTwo[name]);

        var batch = GraphMirror.BatchShapes(mirror.ShapesOf(mirror.Forward(two.narrow(0, 0, 1), RectifierRule.Gradient)), ofTwo);
        Assert.Null(batch["shape"].Values); // [1, -1] and [2, -1]: not a constant of the backward
        Assert.Equal([-1L, 48], batch["y"].Shape);

        // Loading the graph tells no integer value's elements: those take the run.
        Assert.Null(OrtValueShapes.Inferred(model, [.. mirror.ActivationNames], "x", two.shape, ScalarType.Float32, OnnxSessionFactory.Inspect));
    }

    [Fact]
    public void Shapes_the_graph_does_not_fix_are_left_to_a_run()
    {
        TorchNativeLoader.EnsureLoaded();
        // NonZero's length is the data's.
        var model = new OnnxTestModel(13, [-1, 3]).Node("NonZero", ["x"], ["n"]).Node("Cast", ["n"], ["y"], Int("to", (long)Explain.Onnx.Proto.TensorProto.Types.DataType.Float))
            .Output("y").Model();
        Assert.Null(OrtValueShapes.Inferred(model, ["n", "y"], "x", [2, 3], ScalarType.Float32, OnnxSessionFactory.Inspect));
    }

    [Fact]
    public void A_model_older_than_Slices_inputs_or_using_its_names_is_left_to_the_mirror()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([2, 3], 1, -1, 1), [2, 3]);
        var old = new OnnxTestModel(9, [-1, 3]).Node("Relu", ["x"], ["y"]).Output("y").Model();
        Assert.Throws<NotSupportedException>(() => OrtValueShapes.Run(old, ["y"], "x", input, ScalarType.Float32, TestSessions.Open));

        var taken = new OnnxTestModel(13, [-1, 3]).Node("Relu", ["x"], ["saliency.shapes::shape/0"]).Node("Relu", ["saliency.shapes::shape/0"], ["y"])
            .Output("y").Model();
        Assert.Throws<NotSupportedException>(() => OrtValueShapes.Run(taken, ["saliency.shapes::shape/0", "y"], "x", input, ScalarType.Float32, TestSessions.Open));
    }
}
