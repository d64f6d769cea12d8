using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class PoolOpsTests
{
    public static TheoryData<long[], long[], long[], long, string> Windows => new()
    {
        // kernel, strides, pads, ceil_mode, auto_pad
        { [2, 2], [2, 2], [0, 0, 0, 0], 0, "NOTSET" },
        { [3, 3], [2, 2], [1, 1, 1, 1], 0, "NOTSET" },
        { [3, 3], [2, 2], [0, 0, 0, 0], 1, "NOTSET" },
        { [3, 3], [2, 2], [1, 1, 1, 1], 1, "NOTSET" },
        { [3, 2], [2, 1], [0, 1, 1, 0], 0, "NOTSET" },
        { [2, 3], [3, 2], [1, 0, 0, 1], 1, "NOTSET" },
        { [3, 3], [2, 2], [0, 0, 0, 0], 0, "SAME_UPPER" },
        { [3, 3], [2, 2], [0, 0, 0, 0], 0, "SAME_LOWER" },
    };

    private static Explain.Onnx.Proto.AttributeProto[] Attributes(long[] kernel, long[] strides, long[] pads, long ceil, string autoPad) =>
    [
        Ints("kernel_shape", kernel), Ints("strides", strides), Int("ceil_mode", ceil),
        autoPad == "NOTSET" ? Ints("pads", pads) : String("auto_pad", autoPad),
    ];

    [Theory]
    [MemberData(nameof(Windows))]
    public void MaxPool_matches(long[] kernel, long[] strides, long[] pads, long ceil, string autoPad) =>
        Parity.Check(new OnnxTestModel(12, [2, 3, 9, 8]).Node("MaxPool", ["x"], ["y"], Attributes(kernel, strides, pads, ceil, autoPad)).Output("y"));

    [Theory]
    [MemberData(nameof(Windows))]
    public void AveragePool_excluding_pads_matches(long[] kernel, long[] strides, long[] pads, long ceil, string autoPad) =>
        Parity.Check(new OnnxTestModel(12, [2, 3, 9, 8]).Node("AveragePool", ["x"], ["y"], Attributes(kernel, strides, pads, ceil, autoPad)).Output("y"));

    [Theory]
    [MemberData(nameof(Windows))]
    public void AveragePool_including_pads_matches(long[] kernel, long[] strides, long[] pads, long ceil, string autoPad) =>
        Parity.Check(new OnnxTestModel(12, [2, 3, 9, 8])
            .Node("AveragePool", ["x"], ["y"], [.. Attributes(kernel, strides, pads, ceil, autoPad), Int("count_include_pad", 1)]).Output("y"));

    [Fact]
    public void Dilated_and_one_dimensional_max_pools_match()
    {
        Parity.Check(new OnnxTestModel(12, [1, 2, 11, 10])
            .Node("MaxPool", ["x"], ["y"], Ints("kernel_shape", 3, 2), Ints("dilations", 2, 3), Ints("pads", 1, 1, 1, 1)).Output("y"));
        Parity.Check(new OnnxTestModel(12, [1, 2, 11])
            .Node("MaxPool", ["x"], ["y"], Ints("kernel_shape", 3), Ints("strides", 2), Int("ceil_mode", 1)).Output("y"));
    }

    [Theory]
    [InlineData("GlobalAveragePool")]
    [InlineData("GlobalMaxPool")]
    public void Global_pools_match(string op) =>
        Parity.Check(new OnnxTestModel(13, [2, 3, 5, 4]).Node(op, ["x"], ["y"]).Output("y"));
}
