using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class ConvOpsTests
{
    private static float[] Weights(int count, int seed) => Parity.RandomInput([count], seed, -0.5f, 0.5f);

    public static TheoryData<string, long, long[], long[], long[], string> Convs => new()
    {
        // name, group, strides, dilations, pads, auto_pad
        { "plain", 1, [1, 1], [1, 1], [0, 0, 0, 0], "NOTSET" },
        { "strided symmetric pads", 1, [2, 2], [1, 1], [1, 1, 1, 1], "NOTSET" },
        { "asymmetric pads", 1, [2, 1], [1, 1], [0, 1, 2, 0], "NOTSET" },
        { "dilated", 1, [1, 1], [2, 3], [2, 2, 2, 2], "NOTSET" },
        { "grouped", 2, [1, 1], [1, 1], [1, 1, 1, 1], "NOTSET" },
        { "depthwise", 4, [2, 2], [1, 1], [1, 1, 1, 1], "NOTSET" },
        { "same upper", 1, [2, 2], [1, 1], [0, 0, 0, 0], "SAME_UPPER" },
        { "same lower", 1, [2, 2], [1, 1], [0, 0, 0, 0], "SAME_LOWER" },
        { "valid", 1, [3, 3], [1, 1], [0, 0, 0, 0], "VALID" },
    };

    [Theory]
    [MemberData(nameof(Convs))]
    public void Conv_matches_onnx_runtime(string name, long group, long[] strides, long[] dilations, long[] pads, string autoPad)
    {
        Assert.False(string.IsNullOrEmpty(name)); // the name labels the case in the test report
        Parity.Check(Conv(group, strides, dilations, pads, autoPad, "y").Output("y"));
    }

    /// <summary>A 3×3 convolution of x ([2, 4, 9, 8]) into 8 channels, as <see cref="Convs"/> describes it.</summary>
    public static OnnxTestModel Conv(long group, long[] strides, long[] dilations, long[] pads, string autoPad, string output) =>
        new OnnxTestModel(13, [2, 4, 9, 8])
            .Initializer("w", Weights(8 * (4 / (int)group) * 3 * 3, 2), 8, 4 / group, 3, 3)
            .Initializer("b", Weights(8, 3), 8)
            .Node("Conv", ["x", "w", "b"], [output],
                Int("group", group), Ints("strides", strides), Ints("dilations", dilations), Ints("kernel_shape", 3, 3),
                autoPad == "NOTSET" ? Ints("pads", pads) : String("auto_pad", autoPad));

    [Fact]
    public void Conv_1d_and_3d_and_without_bias_match()
    {
        Parity.Check(new OnnxTestModel(11, [1, 3, 10])
            .Initializer("w", Weights(2 * 3 * 3, 4), 2, 3, 3)
            .Node("Conv", ["x", "w"], ["y"], Ints("pads", 1, 2), Ints("strides", 2))
            .Output("y"));
        Parity.Check(new OnnxTestModel(11, [1, 2, 5, 6, 4])
            .Initializer("w", Weights(3 * 2 * 27, 5), 3, 2, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["y"], Ints("pads", 1, 0, 1, 1, 0, 1))
            .Output("y"));
    }

    public static TheoryData<long[], long[], long[], long[]?, long> Transposed => new()
    {
        // strides, pads, output_padding, output_shape, group
        { [1, 1], [0, 0, 0, 0], [0, 0], null, 1 },
        { [2, 2], [1, 1, 1, 1], [1, 1], null, 1 },
        { [2, 3], [0, 1, 2, 0], [0, 0], null, 1 },
        { [2, 2], [0, 0, 0, 0], [0, 0], [11, 13], 1 },
        { [2, 2], [1, 1, 1, 1], [0, 0], null, 2 },
        { [2, 2], [0, 0, 0, 0], [1, 1], null, 1 }, // output_padding past the pads: its gradient crops
    };

    [Theory]
    [MemberData(nameof(Transposed))]
    public void ConvTranspose_matches_onnx_runtime(long[] strides, long[] pads, long[] outputPadding, long[]? outputShape, long group) =>
        Parity.Check(ConvTranspose(strides, pads, outputPadding, outputShape, group, "y").Output("y"));

    /// <summary>A 3×3 ConvTranspose of x [1, 4, 5, 6] into 6 channels, with a bias, to <paramref name="output"/>.</summary>
    public static OnnxTestModel ConvTranspose(long[] strides, long[] pads, long[] outputPadding, long[]? outputShape, long group, string output)
    {
        var attributes = new List<Explain.Onnx.Proto.AttributeProto>
        {
            Ints("strides", strides), Ints("output_padding", outputPadding), Int("group", group), Ints("kernel_shape", 3, 3),
        };
        attributes.Add(outputShape is null ? Ints("pads", pads) : Ints("output_shape", outputShape));
        return new OnnxTestModel(13, [1, 4, 5, 6])
            .Initializer("w", Weights(4 * (6 / (int)group) * 9, 6), 4, 6 / group, 3, 3)
            .Initializer("b", Weights(6, 7), 6)
            .Node("ConvTranspose", ["x", "w", "b"], [output], attributes.ToArray());
    }
}
