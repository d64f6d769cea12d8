using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>WinogradConv transposed at stride 1: a convolution's input gradient from its own weights, against float64.</summary>
public sealed partial class NativeOpsTests
{
    /// <summary>
    /// WinogradConv transposed (stride 1): a padded 3×3 convolution's input gradient from its
    /// output's, W the convolution's own [C, K, 3, 3] (the kernel read flipped, its channel axes
    /// swapped, as the filter is transformed), scattered in float64 from the definition; with the
    /// residual and the guided rectifier gate fused as a backward fuses them, weights constant
    /// (transformed once) or fed (on every call), with both tile sizes: odd and even sizes, output
    /// channels not a multiple of six, a filter over 4 MiB (by element), K ≠ C each way.
    /// </summary>
    [Theory]
    [InlineData(2, 3, 7, 9, 11, true, false)]
    [InlineData(1, 13, 5, 40, 37, false, true)]
    [InlineData(3, 24, 8, 5, 6, true, true)]
    [InlineData(1, 230, 300, 7, 7, true, true)] // a filter over 4 MiB, one block
    public void WinogradConv_computes_a_3x3_convolutions_transpose(int samples, int channels, int outputs, int height, int width, bool constantWeights, bool fused)
    {
        var dy = Parity.RandomInput([samples * channels * height * width], 92, -1, 1);
        var scale = MathF.Min(0.5f, 1.5f / MathF.Sqrt(channels * 9));
        var w = Parity.RandomInput([channels * outputs * 9], 93, -scale, scale); // [C (dY's), K (dX's), 3, 3]
        var residual = Parity.RandomInput([samples * outputs * height * width], 94, -1, 1);
        var gate = Parity.RandomInput([samples * outputs * height * width], 95, -1, 2);
        var expected = Transpose3x3(dy, w, samples, channels, outputs, height, width, 1, height, width);
        if (fused) GuidedGate(expected, residual, gate);
        var shape = new long[] { samples, outputs, height, width };
        var inputs = new List<(string, float[], long[])> { ("x", dy, [samples, channels, height, width]) };
        if (!constantWeights) inputs.Add(("w", w, [channels, outputs, 3, 3]));
        if (fused) inputs.AddRange([("r", residual, shape), ("g", gate, shape)]);
        foreach (var tile in Tiles)
        {
            var model = new OnnxTestModel(13, [-1, channels, height, width]);
            model = constantWeights ? model.Initializer("w", w, channels, outputs, 3, 3) : model.Input("w", TensorProto.Types.DataType.Float, channels, outputs, 3, 3);
            model = model.Initializer("none", Array.Empty<float>(), 0).Input("r", TensorProto.Types.DataType.Float, -1, outputs, height, width)
                .Input("g", TensorProto.Types.DataType.Float, -1, outputs, height, width)
                .Node(NativeOps.WinogradConv, ["x", "w", .. fused ? ["none", "r", "g"] : Array.Empty<string>()], ["y"], Int("tile", tile), Int("transposed", 1),
                    Int("rectify", fused ? 2 : 0))
                .Output("y");
            using var session = TestSessions.Open(InNativeDomain(model.Model()));
            Assert.Equal(new[] { -1, outputs, height, width }, session.OutputMetadata["y"].Dimensions);
            AssertRuns(session, expected, Tolerance(tile), [.. inputs]);
        }
    }

    /// <summary>
    /// A padded 3×3 convolution's transpose in float64, from the definition: each cell of dY
    /// [N, C, H, W] scattered through W [C, K, 3, 3] into dX [N, K, outHeight, outWidth] at
    /// stride × its position, one cell back (the forward's padding).
    /// </summary>
    private static double[] Transpose3x3(float[] dy, float[] w, int samples, int channels, int outputs, int height, int width, int stride,
        int outHeight, int outWidth)
    {
        var dx = new double[samples * outputs * outHeight * outWidth];
        for (var n = 0; n < samples; n++)
        for (var c = 0; c < channels; c++)
        for (var i = 0; i < height; i++)
        for (var j = 0; j < width; j++)
        for (var k = 0; k < outputs; k++)
        for (var a = 0; a < 3; a++)
        for (var b = 0; b < 3; b++)
        {
            var (y, z) = (stride * i + a - 1, stride * j + b - 1);
            if (y >= 0 && y < outHeight && z >= 0 && z < outWidth)
                dx[((n * outputs + k) * outHeight + y) * outWidth + z] += (double)dy[((n * channels + c) * height + i) * width + j] * w[((c * outputs + k) * 3 + a) * 3 + b];
        }
        return dx;
    }

    /// <summary>What a backward's fused kernel writes for guided backprop: the residual added, then the positive part where the rectifier's output G is open.</summary>
    private static void GuidedGate(double[] values, float[] residual, float[] gate)
    {
        for (var i = 0; i < values.Length; i++)
            values[i] = gate[i] > 0 ? Math.Max(values[i] + residual[i], 0) : 0;
    }
}
