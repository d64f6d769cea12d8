using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>WinogradConv's stride-2 forms (the five-product algorithm) against float64.</summary>
public sealed partial class NativeOpsTests
{
    /// <summary>
    /// WinogradConv with stride 2: a 3×3 convolution with one cell of padding, against float64, with
    /// and without its bias and rectifier: odd and even sizes, rows of tiles shorter and longer than
    /// a block (16 tiles; 18 tiles span 65 cells, past what a block's row loads), output channels not
    /// a multiple of six, a transformed filter too large for every block to read (by element, and a
    /// sample of 7×7 outputs: one block, four groups of output channels a task), weights constant or fed.
    /// </summary>
    [Theory]
    [InlineData(2, 3, 7, 9, 11, true, false)]
    [InlineData(1, 5, 13, 56, 56, false, true)]  // 28² outputs: 14 tiles a row
    [InlineData(1, 5, 13, 20, 70, true, true)]   // 35 columns: 18 tiles a row
    [InlineData(3, 17, 6, 1, 1, true, false)]
    [InlineData(3, 8, 24, 10, 12, true, true)]   // four groups of six at once
    [InlineData(1, 300, 230, 14, 14, true, true)] // a filter over 4 MiB, one block
    [InlineData(2, 1100, 64, 9, 40, false, false)] // the same, several blocks: element by element
    public void WinogradConv_computes_a_padded_stride_2_convolution(int samples, int channels, int outputs, int height, int width,
        bool constantWeights, bool fused)
    {
        var x = Parity.RandomInput([samples * channels * height * width], 72, -1, 1);
        var scale = MathF.Min(0.5f, 1.5f / MathF.Sqrt(channels * 9));
        var w = Parity.RandomInput([outputs * channels * 9], 73, -scale, scale);
        var bias = Parity.RandomInput([outputs], 74, -1, 1);
        var (oh, ow) = ((height + 1) / 2, (width + 1) / 2);
        var expected = new double[samples * outputs * oh * ow];
        for (var n = 0; n < samples; n++)
        for (var k = 0; k < outputs; k++)
        for (var i = 0; i < oh; i++)
        for (var j = 0; j < ow; j++)
        {
            double sum = fused ? bias[k] : 0;
            for (var c = 0; c < channels; c++)
            for (var a = 0; a < 3; a++)
            for (var b = 0; b < 3; b++)
            {
                var (y, z) = (2 * i + a - 1, 2 * j + b - 1);
                if (y >= 0 && y < height && z >= 0 && z < width)
                    sum += (double)x[((n * channels + c) * height + y) * width + z] * w[((k * channels + c) * 3 + a) * 3 + b];
            }
            expected[((n * outputs + k) * oh + i) * ow + j] = fused ? Math.Max(sum, 0) : sum;
        }
        if (fused) Assert.Contains(expected, v => v == 0);
        (string, float[], long[])[] inputs = constantWeights
            ? [("x", x, [samples, channels, height, width])]
            : [("x", x, [samples, channels, height, width]), ("w", w, [outputs, channels, 3, 3])];
        var model = new OnnxTestModel(13, [-1, channels, height, width]).Initializer("b", bias, outputs);
        model = constantWeights ? model.Initializer("w", w, outputs, channels, 3, 3) : model.Input("w", TensorProto.Types.DataType.Float, outputs, channels, 3, 3);
        using var session = TestSessions.Open(InNativeDomain(model.Node(NativeOps.WinogradConv, ["x", "w", .. fused ? ["b"] : Array.Empty<string>()], ["y"],
            Int("stride", 2), Int("relu", fused ? 1 : 0)).Output("y").Model()));
        Assert.Equal(new[] { -1, outputs, oh, ow }, session.OutputMetadata["y"].Dimensions);
        AssertRuns(session, expected, 1e-5, inputs);
    }

    /// <summary>
    /// WinogradConv transposed (stride 2): a stride-2 3×3 convolution's input gradient from its
    /// output's, W the convolution's own [C, K, 3, 3], against float64, with each output padding,
    /// and with the residual and the guided rectifier gate fused: rows of tiles shorter and longer
    /// than a block, output channels not a multiple of six, a filter over 4 MiB (by element).
    /// </summary>
    [Theory]
    [InlineData(2, 3, 7, 5, 6, 1, 0, false)]
    [InlineData(1, 5, 13, 28, 28, 1, 1, true)]   // 56² cells: 14 tiles a row
    [InlineData(1, 6, 8, 35, 40, 0, 0, false)]   // 20 tiles a row
    [InlineData(3, 6, 8, 4, 4, 1, 1, true)]
    [InlineData(1, 300, 230, 7, 7, 1, 1, true)] // a filter over 4 MiB, one block
    [InlineData(2, 1100, 64, 5, 20, 0, 1, false)]
    public void WinogradConv_computes_a_stride_2_convolutions_transpose(int samples, int channels, int outputs, int height, int width,
        int padHeight, int padWidth, bool fused)
    {
        var dy = Parity.RandomInput([samples * channels * height * width], 82, -1, 1);
        var scale = MathF.Min(0.5f, 1.5f / MathF.Sqrt(channels * 3));
        var w = Parity.RandomInput([channels * outputs * 9], 83, -scale, scale); // [C (dY's), K (dX's), 3, 3]
        var (oh, ow) = (2 * height - 1 + padHeight, 2 * width - 1 + padWidth);
        var residual = Parity.RandomInput([samples * outputs * oh * ow], 84, -1, 1);
        var gate = Parity.RandomInput([samples * outputs * oh * ow], 85, -1, 2);
        var expected = Transpose3x3(dy, w, samples, channels, outputs, height, width, 2, oh, ow);
        if (fused) GuidedGate(expected, residual, gate);
        (string, float[], long[])[] inputs = fused
            ? [("x", dy, [samples, channels, height, width]), ("r", residual, [samples, outputs, oh, ow]), ("g", gate, [samples, outputs, oh, ow])]
            : [("x", dy, [samples, channels, height, width])];
        var model = new OnnxTestModel(13, [-1, channels, height, width]).Initializer("w", w, channels, outputs, 3, 3)
            .Initializer("none", Array.Empty<float>(), 0).Input("r", TensorProto.Types.DataType.Float, -1, outputs, oh, ow)
            .Input("g", TensorProto.Types.DataType.Float, -1, outputs, oh, ow)
            .Node(NativeOps.WinogradConv, ["x", "w", .. fused ? ["none", "r", "g"] : Array.Empty<string>()], ["y"], Int("stride", 2), Int("transposed", 1),
                Ints("output_padding", padHeight, padWidth), Int("rectify", fused ? 2 : 0))
            .Output("y").Model();
        using var session = TestSessions.Open(InNativeDomain(model));
        Assert.Equal(new[] { -1, outputs, oh, ow }, session.OutputMetadata["y"].Dimensions);
        AssertRuns(session, expected, 1e-5, inputs);
    }
}
