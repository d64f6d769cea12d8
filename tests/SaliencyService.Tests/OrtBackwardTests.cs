using System.Text.Json;
using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using Google.Protobuf;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// Which engine computes gradients, decided at import: ONNX Runtime when the model's backward can be
/// written and reproduces float64 autograd on the probe, else libtorch autograd. Both give the
/// PyTorch (float64) reference maps, Grad-CAM's included.
/// </summary>
public sealed class OrtBackwardTests
{
    /// <summary>Each fixture on each engine: ONNX Runtime as one merged session, or as two (<see cref="BackwardMerge"/>), and libtorch.</summary>
    public static TheoryData<string, string> FixturesEveryWay => new()
    {
        { "mini_resnet", Merged }, { "mini_resnet", Separate }, { "mini_resnet", GradientEngines.LibTorch },
        { "mini_mobilenet", Merged }, { "mini_mobilenet", Separate }, { "mini_mobilenet", GradientEngines.LibTorch },
        { "seed_cnn", Merged }, { "seed_cnn", Separate }, { "seed_cnn", GradientEngines.LibTorch },
    };

    private const string Merged = "onnxruntime, merged";
    private const string Separate = "onnxruntime, two sessions";

    [Theory]
    [MemberData(nameof(FixturesEveryWay))]
    public void Every_engine_gives_the_reference_maps(string fixture, string engine)
    {
        var ortBackward = engine != GradientEngines.LibTorch;
        var path = TestPaths.Fixture(fixture, "model.onnx");
        if (engine == Separate) path = WithValueInBackwardNamespace(path);
        var (explainer, descriptor, onnx, preprocessing) = FixtureExplainers.Analyse(path, ortBackward, FixtureExplainers.Preprocessing(fixture));
        if (engine == Separate) File.Delete(path);
        using var owned = onnx;
        using var model = explainer ?? throw new InvalidOperationException("not explainable");
        Assert.Equal(descriptor.GradientEngine, model.Engine.Name);
        Assert.Equal(ortBackward ? GradientEngines.OnnxRuntime : GradientEngines.LibTorch, descriptor.GradientEngine);
        Assert.Contains("float64", descriptor.GradientEngineReason);
        if (ortBackward) Assert.Equal(engine == Merged, descriptor.GradientEngineReason!.Contains("in one session"));
        using (var layer = (model.Engine as OrtGradientEngine)?.LayerBackprop(model.DefaultLayer!)) Assert.Equal(ortBackward, layer is not null); // Grad-CAM's engine

        foreach (var c in ReferenceCases.All.Where(c => c.Model == fixture))
        foreach (var (method, reference) in new[] { ("guided-backprop", "guided_backprop"), ("gradient", "gradient"), ("deconvnet", "deconvnet"),
                     ("grad-cam", "grad_cam"), ("guided-grad-cam", "guided_grad_cam") })
            FixtureExplainers.AssertReferenceMap(model, c, method, reference, preprocessing.Layout);
    }

    [Fact]
    public void A_model_with_a_node_without_a_backward_rule_falls_back_to_autograd()
    {
        var builder = new OnnxTestModel(13, [1, 3, 6, 6])
            .Initializer("w", Parity.RandomInput([4 * 3 * 9], 3, -0.5f, 0.5f), 4, 3, 3, 3)
            .Node("ReduceMean", ["x"], ["m"], Int("keepdims", 1))
            .Node("Mul", ["w", "m"], ["scaled"]) // weights computed from the input: the Conv rule takes constant ones only
            .Node("Conv", ["x", "scaled"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Floor", ["c"], ["f"])
            .Node("Add", ["c", "f"], ["t"])
            .Node("Relu", ["t"], ["r"])
            .Node("GlobalAveragePool", ["r"], ["g"])
            .Node("Flatten", ["g"], ["y"])
            .Output("y");
        builder.WithFile(path =>
        {
            var (explainer, descriptor, onnx, _) = FixtureExplainers.Analyse(path, true, SixBySix);
            using var owned = onnx;
            using var model = explainer ?? throw new InvalidOperationException("not explainable");
            Assert.Equal(GradientEngines.LibTorch, model.Engine.Name);
            Assert.Equal(GradientEngines.LibTorch, descriptor.GradientEngine);
            Assert.Contains("Conv", descriptor.GradientEngineReason);
            var input = new FloatTensor(Parity.RandomInput([1, 3, 6, 6], 4, -1, 1), [1, 3, 6, 6]);
            var map = Explainer.Explain(model, input, new ExplainRequest(AttributionMethods.Default), null, "NCHW");
            Assert.Contains(map.Map, v => v != 0);
        });
    }

    [Fact]
    public void The_parity_probe_reads_an_output_not_laid_out_per_sample_on_the_probe_alone()
    {
        // The mirror runs the probe and its mirror image as one batch of two; this model's output
        // has its classes first ([4, batch]), so the batch's first row is not the probe's output.
        // (Its scores are not one row per sample either, so the gradient check may refuse it; the
        // parity probe must still compare like with like.)
        var builder = new OnnxTestModel(13, [-1, 3, 6, 6])
            .Initializer("w", Parity.RandomInput([4 * 3 * 9], 3, -0.5f, 0.5f), 4, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c"], ["r"])
            .Node("GlobalAveragePool", ["r"], ["g"])
            .Node("Flatten", ["g"], ["f"])
            .Node("Transpose", ["f"], ["y"], Ints("perm", 1, 0))
            .Output("y");
        builder.WithFile(path =>
        {
            var (session, provider) = FixtureExplainers.Sessions.Create(path);
            using var onnx = new OnnxModel(session, provider);
            var analysis = new ExplainAnalysis(new ExplainOptions(), FixtureExplainers.Sessions);
            var (explainer, descriptor) = analysis.Analyse(path, onnx, SixBySix, "y");
            explainer?.Dispose();
            Assert.NotNull(descriptor.ParityMaxAbsDiff);
            Assert.True(descriptor.ParityMaxAbsDiff < 1e-4, $"parity {descriptor.ParityMaxAbsDiff}: {descriptor.Reason}");
        });
    }

    [Fact]
    public void A_model_with_a_fixed_batch_of_several_is_checked_on_its_whole_probe()
    {
        // Its probe is its fixed batch of four, and it reshapes all four into one row (then back), so
        // it cannot run on one sample: the float64 truth and the parity forward take the probe whole.
        var builder = new OnnxTestModel(13, [4, 10])
            .Initializer("row", [1L, 40L], 2)
            .Initializer("w", Parity.RandomInput([40 * 12], 5, -0.5f, 0.5f), 40, 12)
            .Initializer("rows", [4L, 3L], 2)
            .Node("Relu", ["x"], ["r"])
            .Node("Reshape", ["r", "row"], ["flat"])
            .Node("MatMul", ["flat", "w"], ["m"])
            .Node("Reshape", ["m", "rows"], ["y"])
            .Output("y");
        builder.WithFile(path =>
        {
            var (explainer, descriptor, onnx, _) = FixtureExplainers.Analyse(path, true, new Preprocessing("x", "NCHW", 1, 1, "RGB", 1, [0, 0, 0], [1, 1, 1]));
            using var owned = onnx;
            using var model = explainer;
            Assert.True(descriptor.Supported, descriptor.Reason);
            Assert.Equal(GradientEngines.OnnxRuntime, descriptor.GradientEngine);
        });
    }

    [Fact]
    public void A_model_whose_inferred_shapes_differ_from_its_run_is_explained_on_onnx_runtime()
    {
        // A ceil-mode MaxPool whose last window would start in the padding (6 + 2 + 2 − 4 = 6 over
        // stride 4, rounded up): ONNX's shape inference counts that window (3×3), ONNX Runtime's
        // kernel and PyTorch drop it (2×2). The backward must be written for what the run computes.
        var builder = new OnnxTestModel(13, [-1, 3, 6, 6])
            .Initializer("w", Parity.RandomInput([4 * 3 * 9], 3, -0.5f, 0.5f), 4, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c"], ["r"])
            .Node("MaxPool", ["r"], ["m"], Ints("kernel_shape", 4, 4), Ints("strides", 4, 4), Ints("pads", 2, 2, 2, 2), Int("ceil_mode", 1))
            .Node("GlobalAveragePool", ["m"], ["g"])
            .Node("Flatten", ["g"], ["y"])
            .Output("y");
        builder.WithFile(path =>
        {
            var (explainer, descriptor, onnx, _) = FixtureExplainers.Analyse(path, true, SixBySix);
            using var owned = onnx;
            using var model = explainer ?? throw new InvalidOperationException(descriptor.Reason);
            Assert.Equal([1L, 4, 2, 2], descriptor.Layers.Single(l => l.Name == "m").Shape);
            Assert.Equal(GradientEngines.OnnxRuntime, descriptor.GradientEngine);
            Assert.Contains("float64", descriptor.GradientEngineReason);
            // SmoothGrad's noisy copies run as batches: the backward's shapes hold beyond the probe's batch of one.
            var input = new FloatTensor(Parity.RandomInput([1, 3, 6, 6], 4, -1, 1), [1, 3, 6, 6]);
            var map = Explainer.Explain(model, input, new ExplainRequest(AttributionMethods.Get("smoothgrad"), Samples: 4), null, "NCHW");
            Assert.Contains(map.Map, v => v != 0);
        });
    }

    [Fact]
    public void A_model_that_branches_on_a_shape_is_explained_through_the_branch_taken()
    {
        // PyTorch exports squeeze(dim) of a dimension it cannot size as an If on Shape: squeeze
        // when it is 1. The other branch negates, so a wrong choice flips the map's sign. The
        // branches read "m" and "axis" from the enclosing graph.
        var weights = Parity.RandomInput([18], 5, 0.5f, 1.5f);
        static GraphProto Branch(string name, string opType, string[] inputs)
        {
            var graph = new GraphProto { Name = name };
            graph.Node.Add(new NodeProto { OpType = opType, Name = name + "_node", Input = { inputs }, Output = { name + "_out" } });
            graph.Output.Add(new ValueInfoProto { Name = name + "_out", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } });
            return graph;
        }
        var builder = new OnnxTestModel(13, [-1, 3, 6, 6])
            .Initializer("axis", [2L], 1).Initializer("one", [1L]).Initializer("w", weights, 1, 18)
            .Node("ReduceMean", ["x"], ["m"], Ints("axes", 2), Int("keepdims", 1))
            .Node("Shape", ["m"], ["shape"]).Node("Gather", ["shape", "axis"], ["rows"]).Node("Equal", ["rows", "one"], ["single"])
            .Node("Squeeze", ["single"], ["condition"])
            .Node("If", ["condition"], ["s"],
                new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("then", "Squeeze", ["m", "axis"]) },
                new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("else", "Neg", ["m"]) })
            .Node("Flatten", ["s"], ["f"])
            .Node("Mul", ["f", "w"], ["y"])
            .Output("y");
        builder.WithFile(path =>
        {
            var (explainer, descriptor, onnx, _) = FixtureExplainers.Analyse(path, true, SixBySix);
            using var owned = onnx;
            using var model = explainer ?? throw new InvalidOperationException(descriptor.Reason);
            Assert.Equal(GradientEngines.LibTorch, descriptor.GradientEngine);
            Assert.Contains("If", descriptor.GradientEngineReason);
            var input = new FloatTensor(Parity.RandomInput([1, 3, 6, 6], 6, -1, 1), [1, 3, 6, 6]);
            var map = Explainer.Explain(model, input, new ExplainRequest(AttributionMethods.Get("gradient"), Target: "7"), null, "NCHW");
            // y[7] = w[7] · mean over the rows of x[1, :, 1]: each of those six cells gets w[7] / 6, every other 0.
            for (var c = 0; c < 3; c++)
            for (var h = 0; h < 6; h++)
            for (var j = 0; j < 6; j++)
                Assert.Equal(c == 1 && j == 1 ? weights[7] / 6 : 0, map.Map[(c * 6 + h) * 6 + j], 6);
        });
    }

    /// <summary>
    /// A copy of the model whose first node's output is named in the backward's namespace, so
    /// that its backward cannot be merged into it and runs as a session of its own.
    /// </summary>
    private static string WithValueInBackwardNamespace(string modelPath)
    {
        var model = OnnxFile.Load(modelPath);
        var renamed = model.Graph.Node[0].Output[0];
        foreach (var node in model.Graph.Node)
        {
            for (var i = 0; i < node.Input.Count; i++) if (node.Input[i] == renamed) node.Input[i] = BackwardGraph.Prefix + "renamed";
            for (var i = 0; i < node.Output.Count; i++) if (node.Output[i] == renamed) node.Output[i] = BackwardGraph.Prefix + "renamed";
        }
        Assert.False(BackwardMerge.Allowed(model));
        var path = Path.Combine(Path.GetTempPath(), $"model-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private static readonly Preprocessing SixBySix = new("x", "NCHW", 6, 6, "RGB", 1, [0, 0, 0], [1, 1, 1]);
}
