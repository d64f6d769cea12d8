using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests.Ops;

/// <summary>Runs a test model on ONNX Runtime and on the mirror and compares every output, or every input gradient.</summary>
public static class Parity
{
    public const double Tolerance = 1e-4;

    /// <summary>
    /// Asserts the mirror agrees with ONNX Runtime within 1e-4 on a seeded random input, as served
    /// (float32) and as the float64 reference the import judges gradients by.
    /// </summary>
    public static void Check(OnnxTestModel builder, int seed = 1, float low = -2, float high = 2)
    {
        SaliencyService.Explain.Torch.TorchNativeLoader.EnsureLoaded(); // before the first tensor
        var input = RandomInput(builder.InputShape, seed, low, high);
        var model = builder.Model();
        var expected = RunOnnxRuntime(builder.Bytes(), input, builder.InputShape, model.Graph.Output.Select(o => o.Name).ToArray());
        using var scope = NewDisposeScope();
        var x = tensor(input, builder.InputShape);
        var served = CheckOutputs(model, ScalarType.Float32, x, expected);
        CheckOutputs(model, ScalarType.Float64, x, expected);
        if (model.Graph.Input.Count == 1) CheckShapes(model, x, served);
    }

    /// <summary>
    /// ONNX Runtime's shapes of every value the mirror computes (<see cref="OrtValueShapes"/>, what
    /// an import writes the backward for) equal the mirror's own (<paramref name="mirrored"/>):
    /// dimensions, type as the mirror computes it, and a small integer value's elements.
    /// </summary>
    private static void CheckShapes(SaliencyService.Explain.Onnx.Proto.ModelProto model, TorchSharp.torch.Tensor input,
        IReadOnlyDictionary<string, TensorInfo> mirrored)
    {
        Dictionary<string, TensorInfo> reported;
        try
        {
            reported = OrtValueShapes.Run(model, [.. mirrored.Keys], "x", input, ScalarType.Float32, TestSessions.Open);
        }
        catch (NotSupportedException) when (SaliencyService.Explain.Onnx.OnnxFile.DefaultOpset(model) < 10)
        {
            return; // older than the graph that reads them (the import then takes the mirror's own)
        }
        foreach (var (name, expected) in mirrored)
            Assert.True(reported.TryGetValue(name, out var actual) && actual.Equals(expected),
                $"'{name}': ONNX Runtime {Describe(reported.GetValueOrDefault(name))}, mirror {Describe(expected)}");
        // Where ONNX Runtime infers them all as it loads the graph, they are the same.
        if (OrtValueShapes.Inferred(model, [.. mirrored.Keys], "x", input.shape, ScalarType.Float32, OnnxSessionFactory.Inspect) is not { } inferred) return;
        foreach (var (name, expected) in mirrored)
            Assert.True(inferred.TryGetValue(name, out var actual) && actual.Equals(expected),
                $"'{name}': inferred {Describe(inferred.GetValueOrDefault(name))}, mirror {Describe(expected)}");
    }

    private static string Describe(TensorInfo? info) => info is null ? "nothing"
        : $"[{string.Join(", ", info.Shape)}] {info.Type}{(info.Values is null ? "" : $" = [{string.Join(", ", info.Values)}]")}";

    /// <returns>The shapes of the mirror's values (<see cref="GraphMirror.ShapesOf"/>).</returns>
    private static Dictionary<string, TensorInfo> CheckOutputs(SaliencyService.Explain.Onnx.Proto.ModelProto model, ScalarType floatType,
        TorchSharp.torch.Tensor input, Dictionary<string, (double[] Data, long[] Shape)> expected)
    {
        using var mirror = Mirror(model, floatType);
        using var scope = NewDisposeScope();
        var values = mirror.Forward(GraphMirror.InPrecision(input, floatType), RectifierRule.Gradient);
        foreach (var (name, (data, shape)) in expected)
        {
            var actual = values[name];
            if (actual.is_floating_point()) Assert.Equal(floatType, actual.dtype);
            Assert.Equal(shape, actual.shape);
            var mirrored = actual.to_type(ScalarType.Float64).data<double>().ToArray();
            for (var i = 0; i < data.Length; i++)
                Assert.True(Math.Abs(data[i] - mirrored[i]) <= Tolerance * Math.Max(1, Math.Abs(data[i])),
                    $"{name}[{i}]: ONNX Runtime {data[i]}, {floatType} mirror {mirrored[i]}");
        }
        return mirror.ShapesOf(values);
    }

    /// <summary>Largest gradient difference relative to the reference's largest magnitude.</summary>
    public const double GradientTolerance = 1e-4;

    /// <summary>
    /// Runs the model's input gradients on ONNX Runtime (its forward, then the backward graph the
    /// rules write) and on libtorch's float32 autograd through the mirror (the fallback engine, and
    /// the one oneDNN computes), and compares both with libtorch's autograd through a float64 mirror —
    /// the independent reference, which no float32 kernel takes part in — under every rectifier
    /// rule, for each sample's top score as the target, on a batch.
    /// </summary>
    /// <param name="label">Names the case in failure messages.</param>
    /// <param name="backwardUses">An operator the backward graph must hold (which way a rule wrote it).</param>
    /// <param name="backwardLacks">An operator it must not hold (a rule's work done elsewhere).</param>
    public static void CheckGradients(OnnxTestModel builder, int seed = 1, float low = -2, float high = 2, string label = "",
        string? backwardUses = null, string? backwardLacks = null)
    {
        var model = builder.Model();
        using var mirror = Mirror(model);
        using var reference = Mirror(model, ScalarType.Float64);
        var operators = new HashSet<string>();
        using var backprop = OrtBackprop.Create(model, mirror, builder.InputShape, batched: true, m =>
        {
            operators.UnionWith(m.Graph.Node.Select(n => n.OpType));
            return TestSessions.Open(m);
        });
        if (backwardUses is not null) Assert.Contains(backwardUses, operators);
        if (backwardLacks is not null) Assert.DoesNotContain(backwardLacks, operators);
        using var scope = NewDisposeScope();
        var input = tensor(RandomInput(builder.InputShape, seed, low, high), builder.InputShape);
        var scores = backprop.Forward(input).Scores;
        // Each sample's top score (an open rectifier) and the median of the first (below a saturated ReLU6).
        var first = scores[0];
        var median = first.sub(first.median()).abs().argmin().item<long>();
        var tested = 0;
        foreach (var target in new[] { first.argmax().item<long>(), scores[^1].argmax().item<long>(), median }.Distinct())
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var expected = reference.InputGradients(input, target, rule);
            var scale = expected.abs().max().item<double>();
            foreach (var (engine, actual) in new[] { ("ONNX Runtime", backprop.Run(input, target, rule).Gradient), ("libtorch float32", mirror.InputGradients(input, target, rule)) })
            {
                Assert.Equal(expected.shape, actual.shape);
                var difference = (actual.to_type(ScalarType.Float64) - expected).abs().max().item<double>();
                Assert.True(difference <= GradientTolerance * scale || scale == 0 && difference == 0,
                    $"{label} {engine}, target {target}, {rule}: max difference {difference:G3} from float64 at scale {scale:G3}");
            }
            if (scale > 0) tested++;
        }
        Assert.True(tested >= 3, $"{label}: only {tested} of the cases had a non-zero gradient: the model tests too little");
    }

    private static GraphMirror Mirror(SaliencyService.Explain.Onnx.Proto.ModelProto model, ScalarType floatType = ScalarType.Float32)
    {
        var build = GraphMirror.Build(model, "x", model.Graph.Output[0].Name, floatType);
        Assert.True(build.Mirror is not null, "unsupported: " + string.Join("; ", build.UnsupportedOperators));
        return build.Mirror!;
    }

    /// <summary>
    /// Every rule's input gradients of score <paramref name="target"/> on a seeded random batch of
    /// <paramref name="batchShape"/>, by ONNX Runtime's pass per sample and summed over the batch,
    /// against the float64 mirror's (summed).
    /// </summary>
    public static void CheckPerSampleAndSummed(SaliencyService.Explain.Onnx.Proto.ModelProto model, long[] batchShape, int seed, long target,
        bool onCpu = true)
    {
        SaliencyService.Explain.Torch.TorchNativeLoader.EnsureLoaded();
        using var mirror = Mirror(model);
        using var reference = Mirror(model, ScalarType.Float64);
        using var backprop = OrtBackprop.Create(model, mirror, [1, .. batchShape[1..]], batched: true, TestSessions.Open, onCpu);
        using var scope = NewDisposeScope();
        var input = tensor(RandomInput(batchShape, seed, -1, 1), batchShape);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var expected = reference.InputGradients(input, target, rule);
            AssertEqualsFloat64(expected, backprop.Run(input, target, rule).Gradient, $"{rule}, per sample");
            AssertEqualsFloat64(expected.sum([0], keepdim: true), backprop.Run(input, target, rule, summed: true).Gradient, $"{rule}, summed");
        }
    }

    /// <summary>A float32 engine's tensor against a float64 reference: equal shapes, within <see cref="GradientTolerance"/> of its scale, which is not zero.</summary>
    public static void AssertEqualsFloat64(torch.Tensor expected, torch.Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var scale = expected.abs().max().item<double>();
        var difference = (actual.to_type(ScalarType.Float64) - expected).abs().max().item<double>();
        Assert.True(scale > 0, $"{what}: the reference is all zeros, the case tests nothing");
        Assert.True(difference <= GradientTolerance * scale, $"{what}: max difference {difference:G3} at scale {scale:G3}");
    }

    public static float[] RandomInput(long[] shape, int seed, float low, float high)
    {
        var random = new Random(seed);
        var count = shape.Aggregate(1L, (a, d) => a * d);
        return Enumerable.Range(0, (int)count).Select(_ => low + (float)random.NextDouble() * (high - low)).ToArray();
    }

    private static Dictionary<string, (double[] Data, long[] Shape)> RunOnnxRuntime(byte[] model, float[] input, long[] shape, string[] outputs)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(model, options);
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["x"], [value], outputs);
        var expected = new Dictionary<string, (double[], long[])>();
        for (var i = 0; i < outputs.Length; i++)
        {
            var info = results[i].GetTensorTypeAndShape();
            double[] data = info.ElementDataType switch
            {
                TensorElementType.Float => results[i].GetTensorDataAsSpan<float>().ToArray().Select(v => (double)v).ToArray(),
                TensorElementType.Int64 => results[i].GetTensorDataAsSpan<long>().ToArray().Select(v => (double)v).ToArray(),
                TensorElementType.Bool => results[i].GetTensorDataAsSpan<bool>().ToArray().Select(v => v ? 1.0 : 0).ToArray(),
                var other => throw new NotSupportedException(other.ToString()),
            };
            expected[outputs[i]] = (data, info.Shape);
        }
        return expected;
    }
}
