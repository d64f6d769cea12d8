using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class NormalizationOpsTests
{
    private static OnnxTestModel WithStatistics(int opset, long[] shape, long[] statShape)
    {
        var n = (int)statShape.Aggregate(1L, (a, d) => a * d);
        return new OnnxTestModel(opset, shape)
            .Initializer("scale", Parity.RandomInput([n], 1, 0.5f, 2), statShape)
            .Initializer("bias", Parity.RandomInput([n], 2, -1, 1), statShape)
            .Initializer("mean", Parity.RandomInput([n], 3, -1, 1), statShape)
            .Initializer("var", Parity.RandomInput([n], 4, 0.1f, 2), statShape);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(9)]
    [InlineData(15)]
    public void BatchNormalization_per_channel(int opset) =>
        Parity.Check(WithStatistics(opset, [2, 3, 4, 5], [3])
            .Node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], Float("epsilon", 1e-3f)).Output("y"));

    [Fact]
    public void BatchNormalization_of_a_dense_layer() =>
        Parity.Check(WithStatistics(9, [4, 6], [6])
            .Node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"]).Output("y"));

    [Fact]
    public void InstanceNormalization_matches() =>
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("scale", [1f, 2f, 0.5f], 3).Initializer("bias", [0f, 1f, -1f], 3)
            .Node("InstanceNormalization", ["x", "scale", "bias"], ["y"]).Output("y"));

    [Fact]
    public void LayerNormalization_matches() =>
        Parity.Check(new OnnxTestModel(17, [2, 3, 4])
            .Initializer("scale", Parity.RandomInput([4], 1, 0.5f, 2), 4).Initializer("bias", Parity.RandomInput([4], 2, -1, 1), 4)
            .Node("LayerNormalization", ["x", "scale", "bias"], ["y"]).Output("y"));

    // ONNX Runtime refuses even sizes, so only odd windows can be compared.
    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void LRN_matches(long size) =>
        Parity.Check(new OnnxTestModel(13, [2, 7, 4, 5])
            .Node("LRN", ["x"], ["y"], Int("size", size), Float("alpha", 0.01f), Float("beta", 0.75f), Float("bias", 2f)).Output("y"));
}
