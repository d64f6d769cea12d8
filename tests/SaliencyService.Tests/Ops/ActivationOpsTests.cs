using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class ActivationOpsTests
{
    private static void Unary(string op, int opset = 13, params Explain.Onnx.Proto.AttributeProto[] attributes) =>
        Parity.Check(new OnnxTestModel(opset, [2, 3, 4, 5]).Node(op, ["x"], ["y"], attributes).Output("y"), low: -8, high: 8);

    [Theory]
    [InlineData("Relu")]
    [InlineData("Sigmoid")]
    [InlineData("Tanh")]
    [InlineData("Softplus")]
    [InlineData("Softsign")]
    [InlineData("HardSigmoid")]
    [InlineData("Elu")]
    [InlineData("Selu")]
    public void Pointwise_activations_match(string op) => Unary(op);

    [Fact]
    public void Attributes_of_activations_are_honoured()
    {
        Unary("LeakyRelu", 13, Float("alpha", 0.2f));
        Unary("HardSigmoid", 13, Float("alpha", 1 / 6f), Float("beta", 0.5f));
        Unary("Elu", 13, Float("alpha", 0.5f));
        Unary("HardSwish", 14);
        Unary("Mish", 18);
        Unary("Gelu", 20);
        Unary("Gelu", 20, String("approximate", "tanh"));
    }

    [Fact]
    public void PRelu_broadcasts_its_slope()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("slope", [0.1f, -0.2f, 0.3f], 3, 1, 1)
            .Node("PRelu", ["x", "slope"], ["y"]).Output("y"));
    }

    [Fact]
    public void Clip_in_attribute_and_input_forms()
    {
        Unary("Clip", 6, Float("min", 0), Float("max", 6)); // ReLU6
        Unary("Clip", 6, Float("min", -1), Float("max", 2));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("lo", [0f]).Initializer("hi", [6f])
            .Node("Clip", ["x", "lo", "hi"], ["y"]).Output("y"), low: -8, high: 8);
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("lo", [-0.5f])
            .Node("Clip", ["x", "lo"], ["y"]).Output("y"), low: -8, high: 8);
    }

    [Theory]
    [InlineData("Softmax", 11, 1)]
    [InlineData("Softmax", 11, 2)]
    [InlineData("Softmax", 13, 1)]
    [InlineData("Softmax", 13, -1)]
    [InlineData("LogSoftmax", 11, 1)]
    [InlineData("LogSoftmax", 13, 2)]
    public void Softmax_axis_semantics_before_and_after_opset_13(string op, int opset, long axis) =>
        Unary(op, opset, Int("axis", axis));
}
