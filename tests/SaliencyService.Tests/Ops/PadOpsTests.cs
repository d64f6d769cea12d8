using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class PadOpsTests
{
    [Theory]
    [InlineData("constant")]
    [InlineData("reflect")]
    [InlineData("edge")]
    public void Pad_modes_with_pads_as_input(string mode)
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 5, 6]).Initializer("p", [0L, 0L, 1L, 2L, 0L, 0L, 2L, 1L], 8)
            .Node("Pad", ["x", "p"], ["y"], String("mode", mode)).Output("y"));
    }

    [Fact]
    public void Pad_with_a_value_negative_pads_and_the_attribute_form()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 5, 6]).Initializer("p", [0L, 1L, 1L, -1L, 0L, 0L, 2L, -2L], 8).Initializer("v", [1.5f])
            .Node("Pad", ["x", "p", "v"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(9, [2, 3, 5, 6])
            .Node("Pad", ["x"], ["y"], Ints("pads", 0, 0, 1, 1, 0, 0, 1, 1), Float("value", -1f)).Output("y"));
    }
}
