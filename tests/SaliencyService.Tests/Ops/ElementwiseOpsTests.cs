using Xunit;

namespace SaliencyService.Tests.Ops;

public sealed class ElementwiseOpsTests
{
    [Theory]
    [InlineData("Add")]
    [InlineData("Sub")]
    [InlineData("Mul")]
    [InlineData("Div")]
    [InlineData("Max")]
    [InlineData("Min")]
    [InlineData("Sum")]
    [InlineData("Mean")]
    public void Binary_ops_broadcast(string op)
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("c", [0.5f, 1.5f, -2f, 3f, 0.25f], 5)
            .Node(op, ["x", "c"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("c", [0.5f, 1.5f, -2f], 3, 1, 1)
            .Node(op, ["c", "x"], ["y"]).Output("y"));
    }

    [Fact]
    public void Pow_with_a_constant_exponent() =>
        Parity.Check(new OnnxTestModel(13, [2, 3]).Initializer("e", [2f]).Node("Pow", ["x", "e"], ["y"]).Output("y"));

    [Theory]
    [InlineData("Sqrt")]
    [InlineData("Exp")]
    [InlineData("Log")]
    [InlineData("Erf")]
    [InlineData("Neg")]
    [InlineData("Abs")]
    [InlineData("Reciprocal")]
    [InlineData("Floor")]
    [InlineData("Ceil")]
    public void Unary_maths(string op) =>
        Parity.Check(new OnnxTestModel(13, [3, 7]).Node(op, ["x"], ["y"]).Output("y"), low: 0.1f, high: 3f);

    [Fact]
    public void Comparisons_feed_where()
    {
        Parity.Check(new OnnxTestModel(13, [3, 7])
            .Initializer("zero", [0f])
            .Node("Greater", ["x", "zero"], ["positive"])
            .Node("Neg", ["x"], ["negated"])
            .Node("Where", ["positive", "x", "negated"], ["y"]).Output("y"));
    }
}
