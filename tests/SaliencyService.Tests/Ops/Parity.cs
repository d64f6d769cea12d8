using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Mirror;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests.Ops;

/// <summary>Runs a test model on ONNX Runtime and on the mirror and compares every output.</summary>
public static class Parity
{
    public const double Tolerance = 1e-4;

    /// <summary>Asserts the mirror agrees with ONNX Runtime within 1e-4 on a seeded random input.</summary>
    public static void Check(OnnxTestModel builder, int seed = 1, float low = -2, float high = 2)
    {
        var input = RandomInput(builder.InputShape, seed, low, high);
        var model = builder.Model();
        var expected = RunOnnxRuntime(builder.Bytes(), input, builder.InputShape, model.Graph.Output.Select(o => o.Name).ToArray());

        var build = GraphMirror.Build(model, "x", model.Graph.Output[0].Name);
        Assert.True(build.Mirror is not null, "unsupported: " + string.Join("; ", build.UnsupportedOperators));
        using var mirror = build.Mirror!;
        using var scope = NewDisposeScope();
        var values = mirror.Forward(tensor(input, builder.InputShape), RectifierRule.Gradient);
        foreach (var (name, (data, shape)) in expected)
        {
            var actual = values[name];
            Assert.Equal(shape, actual.shape);
            var mirrored = actual.to_type(ScalarType.Float64).data<double>().ToArray();
            for (var i = 0; i < data.Length; i++)
                Assert.True(Math.Abs(data[i] - mirrored[i]) <= Tolerance * Math.Max(1, Math.Abs(data[i])),
                    $"{name}[{i}]: ONNX Runtime {data[i]}, mirror {mirrored[i]}");
        }
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
