using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class ReduceOpsTests
{
    [Theory]
    [InlineData("ReduceMean")]
    [InlineData("ReduceSum")]
    [InlineData("ReduceMax")]
    [InlineData("ReduceMin")]
    public void Axes_as_attribute(string op)
    {
        Parity.Check(new OnnxTestModel(11, [2, 3, 4, 5]).Node(op, ["x"], ["y"], Ints("axes", 2, 3)).Output("y"));
        Parity.Check(new OnnxTestModel(11, [2, 3, 4, 5]).Node(op, ["x"], ["y"], Ints("axes", -1), Int("keepdims", 0)).Output("y"));
        Parity.Check(new OnnxTestModel(11, [2, 3, 4, 5]).Node(op, ["x"], ["y"]).Output("y"));
    }

    [Theory]
    [InlineData("ReduceMean", 18)]
    [InlineData("ReduceSum", 13)]
    [InlineData("ReduceMax", 18)]
    [InlineData("ReduceMin", 18)]
    public void Axes_as_input(string op, int opset) =>
        Parity.Check(new OnnxTestModel(opset, [2, 3, 4, 5]).Initializer("axes", [1L, 3L], 2)
            .Node(op, ["x", "axes"], ["y"], Int("keepdims", 0)).Output("y"));
}
