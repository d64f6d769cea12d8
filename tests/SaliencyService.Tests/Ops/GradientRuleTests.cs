using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

/// <summary>Every backward rule against libtorch's autograd (<see cref="Parity.CheckGradients"/>).</summary>
public sealed class GradientRuleTests
{
    private static float[] Weights(int count, int seed) => Parity.RandomInput([count], seed, -0.5f, 0.5f);

    [Theory]
    [MemberData(nameof(ConvOpsTests.Convs), MemberType = typeof(ConvOpsTests))]
    public void Conv_then_relu(string name, long group, long[] strides, long[] dilations, long[] pads, string autoPad)
    {
        Parity.CheckGradients(ConvOpsTests.Conv(group, strides, dilations, pads, autoPad, "c").Node("Relu", ["c"], ["y"]).Output("y"), label: name);
    }

    [Fact]
    public void Conv_1d_and_3d()
    {
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 11])
            .Initializer("w", Weights(4 * 3 * 3, 4), 4, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("strides", 2), Ints("pads", 1, 0))
            .Node("Relu", ["c"], ["y"]).Output("y"));
        Parity.CheckGradients(new OnnxTestModel(13, [2, 2, 5, 6, 5])
            .Initializer("w", Weights(3 * 2 * 27, 5), 3, 2, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1, 1, 1))
            .Node("Relu", ["c"], ["y"]).Output("y"));
    }

    [Theory]
    [InlineData(3, 2, 1, 0)]   // overlapping windows, as in ResNet's stem
    [InlineData(2, 2, 0, 0)]
    [InlineData(3, 2, 0, 1)]   // ceil_mode
    public void Relu_then_max_pool(long kernel, long stride, long pad, long ceil) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 9, 10])
            .Node("Relu", ["x"], ["r"])
            .Node("MaxPool", ["r"], ["y"], Ints("kernel_shape", kernel, kernel), Ints("strides", stride, stride),
                Ints("pads", pad, pad, pad, pad), Int("ceil_mode", ceil))
            .Output("y"));

    [Theory]
    [InlineData(0, 0, new long[] { 1, 1, 1, 1 })]
    [InlineData(1, 0, new long[] { 1, 0, 0, 1 })]
    [InlineData(0, 1, new long[] { 0, 1, 1, 0 })]
    [InlineData(1, 1, new long[] { 1, 1, 1, 1 })]
    public void Average_pool(long includePad, long ceil, long[] pads) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 9, 8])
            .Node("Relu", ["x"], ["r"])
            .Node("AveragePool", ["r"], ["y"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", pads),
                Int("count_include_pad", includePad), Int("ceil_mode", ceil))
            .Output("y"));

    [Theory]
    [InlineData(0L, 1f)]
    [InlineData(1L, 0.5f)]
    public void Global_average_pool_flatten_gemm(long transB, float alpha) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 6, 5, 4])
            .Initializer("w", Weights(6 * 5, 6), transB == 1 ? [5, 6] : [6, 5])
            .Initializer("b", Weights(5, 7), 5)
            .Node("Relu", ["x"], ["r"])
            .Node("GlobalAveragePool", ["r"], ["g"])
            .Node("Flatten", ["g"], ["f"])
            .Node("Gemm", ["f", "w", "b"], ["y"], Int("transB", transB), Float("alpha", alpha))
            .Output("y"));

    [Fact]
    public void Residual_add_with_broadcast_sub_mul_and_div() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 5, 5])
            .Initializer("mean", Weights(3, 8), 1, 3, 1, 1)
            .Initializer("scale", [2f, 4f, 8f], 1, 3, 1, 1)
            .Node("Sub", ["x", "mean"], ["centred"])
            .Node("Div", ["centred", "scale"], ["scaled"])
            .Node("Relu", ["scaled"], ["r"])
            .Node("Add", ["r", "scaled"], ["sum"])
            .Node("Mul", ["sum", "r"], ["product"])
            .Node("Sub", ["product", "r"], ["y"])
            .Output("y"));

    [Fact]
    public void Concat_transpose_reshape_squeeze_unsqueeze() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("shape", [0L, -1L], 2)
            .Initializer("axes", [1L], 1)
            .Node("Relu", ["x"], ["r"])
            .Node("Concat", ["r", "x"], ["c"], Int("axis", 1))
            .Node("Transpose", ["c"], ["t"], Ints("perm", 0, 2, 3, 1))
            .Node("Reshape", ["t", "shape"], ["flat"])
            .Node("Unsqueeze", ["flat", "axes"], ["u"])
            .Node("Squeeze", ["u", "axes"], ["y"])
            .Output("y"));

    [Fact]
    public void Batch_norm_and_relu6_as_clip() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 6, 6])
            .Initializer("scale", [1.5f, -0.5f, 2f], 3)
            .Initializer("bias", [0.1f, 0.2f, -0.3f], 3)
            .Initializer("mean", [0.5f, -1f, 0f], 3)
            .Initializer("var", [2f, 0.5f, 1f], 3)
            .Initializer("min", [0f])
            .Initializer("max", [6f])
            .Node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["bn"])
            .Node("Clip", ["bn", "min", "max"], ["y"])
            .Output("y"), low: -4, high: 8);

    [Fact]
    public void Relu6_as_clip_attributes_before_opset_11() =>
        Parity.CheckGradients(new OnnxTestModel(9, [2, 3, 6, 6])
            .Node("Clip", ["x"], ["y"], Float("min", 0), Float("max", 6))
            .Output("y"), low: -4, high: 8);

    [Fact]
    public void Constant_pad_and_crop_then_matmul() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("pads", [0L, 0L, 1L, -1L, 0L, 0L, 2L, 1L], 8)
            .Initializer("w", Weights(5 * 3, 9), 5, 3)
            .Node("Pad", ["x", "pads"], ["p"])
            .Node("Relu", ["p"], ["r"])
            .Node("MatMul", ["r", "w"], ["y"])
            .Output("y"));
}
