using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

/// <summary>Every backward rule against libtorch's autograd (<see cref="Parity.CheckGradients"/>).</summary>
public sealed class GradientRuleTests
{
    /// <summary>The operator MaxPool's backward is written with: the engine's own kernel where it is built.</summary>
    private static string MaxPoolBackward => NativeOps.Available ? NativeOps.MaxPoolGrad : "ScatterElements";

    private static float[] Weights(int count, int seed) => Parity.RandomInput([count], seed, -0.5f, 0.5f);

    [Theory]
    [MemberData(nameof(ConvOpsTests.Convs), MemberType = typeof(ConvOpsTests))]
    public void Conv_then_relu(string name, long group, long[] strides, long[] dilations, long[] pads, string autoPad)
    {
        Parity.CheckGradients(ConvOpsTests.Conv(group, strides, dilations, pads, autoPad, "c").Node("Relu", ["c"], ["y"]).Output("y"), label: name);
    }

    /// <summary>The operator a strided 2-D convolution's input gradient is written with: the engine's scatter of columns where it is built.</summary>
    private static string StridedConvBackward => NativeOps.Available ? NativeOps.Col2Im : "ConvTranspose";

    /// <summary>
    /// Strided convolutions, whose input gradient is a product and the engine's scatter of its
    /// columns (ColumnGradient): ResNet's stem on even and odd sizes, other kernels, uneven pads,
    /// strides of 2 to 4, a dilated one, and more channels than a stem's.
    /// </summary>
    [Theory]
    [InlineData(7, 2, new long[] { 3, 3, 3, 3 }, 1, 3, 16, 16)]
    [InlineData(7, 2, new long[] { 3, 3, 3, 3 }, 1, 3, 15, 13)]
    [InlineData(5, 2, new long[] { 2, 1, 0, 2 }, 1, 2, 11, 12)]
    [InlineData(4, 4, new long[] { 0, 0, 0, 0 }, 1, 1, 12, 9)]
    [InlineData(6, 3, new long[] { 2, 0, 1, 2 }, 1, 1, 14, 10)]
    [InlineData(3, 2, new long[] { 1, 1, 1, 1 }, 2, 4, 13, 9)]
    [InlineData(3, 2, new long[] { 1, 1, 1, 1 }, 1, 5, 10, 9)]
    public void Strided_conv(long kernel, long stride, long[] pads, long dilation, long channels, long height, long width) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, channels, height, width])
            .Initializer("w", Weights(5 * (int)(channels * kernel * kernel), 8), 5, channels, kernel, kernel)
            .Node("Conv", ["x", "w"], ["c"], Ints("strides", stride, stride), Ints("pads", pads), Ints("dilations", dilation, dilation))
            .Node("Relu", ["c"], ["y"]).Output("y"), backwardUses: StridedConvBackward);

    /// <summary>The operator a depthwise convolution's input gradient is written with where the stride-1 form does not apply.</summary>
    private static string DepthwiseConvBackward => NativeOps.Available ? NativeOps.DepthwiseCol2Im : "ConvTranspose";

    /// <summary>
    /// Depthwise convolutions (one channel a group) whose input gradient is the engine's weighted
    /// scatter (ColumnGradient.DepthwiseInputGradient): MobileNetV2's 3×3/2 on even and odd sizes,
    /// uneven pads, a 5×5/2 as EfficientNet has, strides of 3 and 1×2, a dilated one, and a
    /// stride-1 one padded past its kernel.
    /// </summary>
    [Theory]
    [InlineData(3, 3, 2, 2, new long[] { 1, 1, 1, 1 }, 1, 16, 16)]
    [InlineData(3, 3, 2, 2, new long[] { 1, 1, 1, 1 }, 1, 15, 13)]
    [InlineData(3, 3, 2, 2, new long[] { 0, 0, 1, 1 }, 1, 14, 12)]
    [InlineData(5, 5, 2, 2, new long[] { 2, 2, 2, 2 }, 1, 13, 16)]
    [InlineData(3, 2, 3, 3, new long[] { 1, 0, 2, 1 }, 1, 14, 11)]
    [InlineData(3, 3, 1, 2, new long[] { 2, 1, 0, 2 }, 2, 12, 13)]
    [InlineData(2, 2, 1, 1, new long[] { 2, 2, 2, 2 }, 1, 7, 8)]
    public void Strided_depthwise_conv(long kh, long kw, long sh, long sw, long[] pads, long dilation, long height, long width)
    {
        const int channels = 6;
        Parity.CheckGradients(new OnnxTestModel(13, [2, channels, height, width])
            .Initializer("w", Weights((int)(channels * kh * kw), 12), channels, 1, kh, kw)
            .Node("Conv", ["x", "w"], ["c"], Int("group", channels), Ints("strides", sh, sw), Ints("pads", pads), Ints("dilations", dilation, dilation))
            .Node("Relu", ["c"], ["y"]).Output("y"), backwardUses: DepthwiseConvBackward);
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

    /// <summary>The rectifier's gate where MaxPool's own kernel gates it (a rectifier read by the max pool only), else the graph's.</summary>
    private static string? GateElsewhere => NativeOps.Available ? "HardSigmoid" : null;

    /// <summary>A 1×1 convolution after the pool mixes its channels, so every window gets a gradient, windows of zeros included.</summary>
    [Theory]
    [InlineData(3, 2, 1, 0)]   // overlapping windows, as in ResNet's stem
    [InlineData(2, 2, 0, 0)]
    [InlineData(3, 2, 0, 1)]   // ceil_mode
    [InlineData(3, 1, 1, 0)]   // stride 1, as in Inception's pooling branches
    [InlineData(4, 3, 1, 0)]   // a stride the kernel has no specialised loop for
    public void Relu_then_max_pool(long kernel, long stride, long pad, long ceil) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 9, 10])
            .Node("Relu", ["x"], ["r"])
            .Node("MaxPool", ["r"], ["m"], Ints("kernel_shape", kernel, kernel), Ints("strides", stride, stride),
                Ints("pads", pad, pad, pad, pad), Int("ceil_mode", ceil))
            .Initializer("w", Weights(4 * 3, 9), 4, 3, 1, 1).Node("Conv", ["m", "w"], ["y"])
            .Output("y"), backwardUses: MaxPoolBackward, backwardLacks: GateElsewhere);

    /// <summary>ReLU6 before the pool: the kernel's gate closes at 6 too (inputs up to 8 saturate some cells).</summary>
    [Fact]
    public void Relu6_then_max_pool() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 9, 10])
            .Initializer("low", [0f]).Initializer("high", [6f])
            .Node("Clip", ["x", "low", "high"], ["r"])
            .Node("MaxPool", ["r"], ["m"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1))
            .Initializer("w", Weights(4 * 3, 9), 4, 3, 1, 1).Node("Conv", ["m", "w"], ["y"])
            .Output("y"), low: -8, high: 8, backwardUses: MaxPoolBackward, backwardLacks: GateElsewhere);

    /// <summary>A rectifier read by the pool and by another op: its gradient is a sum, which the graph gates.</summary>
    [Fact]
    public void Relu_read_by_max_pool_and_more() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 8, 8])
            .Node("Relu", ["x"], ["r"])
            .Node("MaxPool", ["r"], ["m"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2))
            .Node("AveragePool", ["r"], ["a"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2))
            .Node("Add", ["m", "a"], ["y"])
            .Output("y"), backwardUses: "HardSigmoid");

    [Fact]
    public void Relu_then_dilated_max_pool_with_uneven_pads() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 11, 10])
            .Node("Relu", ["x"], ["r"])
            .Node("MaxPool", ["r"], ["y"], Ints("kernel_shape", 3, 2), Ints("strides", 1, 2), Ints("dilations", 2, 1), Ints("pads", 1, 0, 2, 1))
            .Output("y"), backwardUses: MaxPoolBackward);

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

    /// <summary>
    /// Sixteen channels fill ONNX Runtime's blocked layout, where the backward graph's gates are
    /// depthwise convolutions (<see cref="SaliencyService.Explain.Mirror.Rectifier.Gradient"/>); a
    /// ReLU6 that saturates, a ReLU after it, and a flattened head whose reshape keeps the batch.
    /// </summary>
    [Fact]
    public void Relu6_and_relu_on_sixteen_channels() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 5, 5])
            .Initializer("w1", Weights(16 * 3 * 9, 11), 16, 3, 3, 3)
            .Initializer("w2", Weights(16 * 16 * 9, 12), 16, 16, 3, 3)
            .Initializer("min", [0f])
            .Initializer("max", [6f])
            .Initializer("w3", Weights(16 * 25 * 4, 13), 16 * 25, 4)
            .Node("Conv", ["x", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1))
            .Node("Clip", ["c1", "min", "max"], ["r1"])
            .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c2"], ["r2"])
            .Node("Flatten", ["r2"], ["f"])
            .Node("MatMul", ["f", "w3"], ["y"])
            .Output("y"), low: -8, high: 8);

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
    // ---- the rules modern architectures need (issue 18): transformers, ConvNeXt, squeeze-excitation ----

    [Theory]
    [InlineData("Sigmoid")]
    [InlineData("Tanh")]
    [InlineData("Erf")]
    [InlineData("Exp")]
    [InlineData("Neg")]
    [InlineData("HardSigmoid")]
    public void Unary_activation_times_its_input(string op) =>
        // x · f(x) keeps every input's gradient alive (SiLU and squeeze-excitation have this shape).
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4]).Node(op, ["x"], ["f"]).Node("Mul", ["x", "f"], ["y"]).Output("y"), label: op);

    [Theory]
    [InlineData("LeakyRelu", 0.2f)]
    [InlineData("LeakyRelu", null)]
    [InlineData("Elu", 0.5f)]
    [InlineData("Elu", null)]
    [InlineData("Selu", null)]
    [InlineData("Softplus", null)]
    [InlineData("Softsign", null)]
    [InlineData("Abs", null)]
    public void Pointwise_non_linearity_between_convolutions(string op, float? alpha)
    {
        // Between two convolutions, so that the gradient reaching it and leaving it varies per cell.
        var node = alpha is { } a ? Float("alpha", a) : null;
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 5, 5])
            .Initializer("w1", Weights(4 * 3 * 9, 21), 4, 3, 3, 3)
            .Initializer("w2", Weights(2 * 4 * 9, 22), 2, 4, 3, 3)
            .Node("Conv", ["x", "w1"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node(op, ["c"], ["f"], node is null ? [] : [node])
            .Node("Conv", ["f", "w2"], ["y"])
            .Output("y"), label: op);
    }

    [Fact]
    public void Prelu_with_a_slope_per_channel() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 5, 5])
            .Initializer("w1", Weights(4 * 3 * 9, 23), 4, 3, 3, 3)
            .Initializer("slope", Weights(4, 24), 4, 1, 1)
            .Initializer("w2", Weights(2 * 4 * 9, 25), 2, 4, 3, 3)
            .Node("Conv", ["x", "w1"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("PRelu", ["c", "slope"], ["f"])
            .Node("Conv", ["f", "w2"], ["y"])
            .Output("y"));

    /// <summary>
    /// Max and min reductions, after a rectifier where its zeros tie: the gradient is shared among
    /// the tied cells as libtorch's amax and amin share it (a channel that is all zeros ties everywhere).
    /// </summary>
    [Theory]
    [InlineData("GlobalMaxPool", null, 1, "r")]
    [InlineData("ReduceMax", new long[] { 2, 3 }, 1, "r")] // a Keras global max pool, in NCHW
    [InlineData("ReduceMax", new long[] { 1 }, 1, "r")]    // over channels, as CBAM's spatial attention
    [InlineData("ReduceMin", new long[] { 1 }, 0, "c")]
    public void Max_and_min_reductions_share_ties(string op, long[]? axes, long keep, string input)
    {
        var attributes = op == "GlobalMaxPool" ? [] : new[] { Ints("axes", axes!), Int("keepdims", keep) };
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 5, 5])
            .Initializer("w1", Weights(4 * 3 * 9, 26), 4, 3, 3, 3)
            .Node("Conv", ["x", "w1"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c"], ["r"])
            .Initializer("rest", [1L], 1)
            .Node(op, [input], ["m"], attributes)
            .Node("Flatten", ["m"], ["f"])
            .Node("ReduceSum", ["f", "rest"], ["y"]) // every cell in the score: tied zeros pass a gradient too
            .Output("y"), label: op);
    }

    [Fact]
    public void Mean_of_three_operands_one_broadcast() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4])
            .Initializer("w1", Weights(3 * 3 * 9, 27), 3, 3, 3, 3)
            .Node("Conv", ["x", "w1"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("ReduceMean", ["c"], ["row"], Ints("axes", 2), Int("keepdims", 1)) // [2, 3, 1, 4], broadcast back over rows
            .Node("Mean", ["x", "c", "row"], ["m"])
            .Node("Mul", ["m", "x"], ["y"])
            .Output("y"));

    [Fact]
    public void Max_against_a_broadcast_constant_then_min_of_two_computed_operands() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4])
            .Initializer("w1", Weights(3 * 3 * 9, 31), 3, 3, 3, 3)
            .Initializer("floor", Weights(3, 32), 3, 1, 1) // a floor per channel, the first operand
            .Node("Conv", ["x", "w1"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Max", ["floor", "c"], ["m"])
            .Node("Min", ["m", "x"], ["n"])
            .Node("Max", ["n"], ["one"]) // a single operand passes through
            .Node("Mul", ["one", "x"], ["y"])
            .Output("y"), backwardUses: "Greater");

    [Theory]
    [MemberData(nameof(ConvOpsTests.Transposed), MemberType = typeof(ConvOpsTests))]
    public void ConvTranspose_then_relu(long[] strides, long[] pads, long[] outputPadding, long[]? outputShape, long group) =>
        Parity.CheckGradients(ConvOpsTests.ConvTranspose(strides, pads, outputPadding, outputShape, group, "c").Node("Relu", ["c"], ["y"]).Output("y"),
            label: $"strides {string.Join('×', strides)}, pads {string.Join(',', pads)}, output_padding {string.Join(',', outputPadding)}, group {group}",
            backwardUses: "Conv");

    [Fact]
    public void ConvTranspose_padded_the_same_and_dilated() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 7])
            .Initializer("w", Weights(3 * 4 * 3, 46), 3, 4, 3)
            .Node("ConvTranspose", ["x", "w"], ["c"], Ints("strides", 2), Ints("dilations", 2), String("auto_pad", "SAME_UPPER"))
            .Node("Relu", ["c"], ["y"]).Output("y"));

    [Theory]
    [MemberData(nameof(ResizeOpsTests.Modes), MemberType = typeof(ResizeOpsTests))]
    public void Resize_by_scales_and_by_sizes_then_conv(string mode, string transform, string nearest)
    {
        var attributes = new[] { String("mode", mode), String("coordinate_transformation_mode", transform), String("nearest_mode", nearest) };
        OnnxTestModel Resized(int opset, Func<OnnxTestModel, OnnxTestModel> resize) => resize(new OnnxTestModel(opset, [2, 2, 5, 6]))
            .Initializer("w", Weights(3 * 2 * 9, 47), 3, 2, 3, 3)
            .Node("Conv", ["r", "w"], ["y"], Ints("pads", 1, 1, 1, 1)).Output("y");
        Parity.CheckGradients(Resized(13, m => m.Initializer("scales", [1f, 1f, 2f, 1.5f], 4).Node("Resize", ["x", "", "scales"], ["r"], attributes)),
            label: $"{mode} {transform} {nearest}, scales", backwardUses: "MatMul");
        Parity.CheckGradients(Resized(18, m => m.Initializer("sizes", [3L, 13L], 2)
                .Node("Resize", ["x", "", "", "sizes"], ["r"], [.. attributes, Ints("axes", 2, 3)])),
            label: $"{mode} {transform} {nearest}, sizes of the image axes", backwardUses: "MatMul");
        // As PyTorch exports interpolate(size=...): the batch and channels read from the input's
        // shape, so the sizes change with the batch and are no constants; the output's shape says them.
        Parity.CheckGradients(Resized(13, m => m.Initializer("zero", [0L], 1).Initializer("two", [2L], 1).Initializer("size", [3L, 13L], 2)
                .Node("Shape", ["x"], ["shape"]).Node("Slice", ["shape", "zero", "two"], ["kept"]).Node("Concat", ["kept", "size"], ["sizes"], Int("axis", 0))
                .Node("Resize", ["x", "", "", "sizes"], ["r"], attributes)),
            label: $"{mode} {transform} {nearest}, sizes from the shape", backwardUses: "MatMul");
    }

    [Fact]
    public void Upsample_resize_10_and_resize_along_the_channels_and_given_axes()
    {
        Parity.CheckGradients(new OnnxTestModel(9, [2, 2, 3, 4]).Initializer("scales", [1f, 1f, 2f, 3f], 4)
            .Node("Upsample", ["x", "scales"], ["u"], String("mode", "linear")).Node("Mul", ["u", "u"], ["y"]).Output("y"), label: "Upsample 9");
        Parity.CheckGradients(new OnnxTestModel(7, [2, 2, 3, 4])
            .Node("Upsample", ["x"], ["u"], String("mode", "nearest"), Floats("scales", 1f, 1f, 2f, 2f)).Node("Mul", ["u", "u"], ["y"]).Output("y"), label: "Upsample 7");
        Parity.CheckGradients(new OnnxTestModel(10, [2, 2, 3, 4]).Initializer("scales", [1f, 3f, 2f, 1f], 4)
            .Node("Resize", ["x", "scales"], ["u"], String("mode", "linear")).Node("Mul", ["u", "u"], ["y"]).Output("y"), label: "Resize 10, channels too");
        Parity.CheckGradients(new OnnxTestModel(18, [2, 2, 5, 6]).Initializer("sizes", [7L, 4L], 2)
            .Node("Resize", ["x", "", "", "sizes"], ["u"], String("mode", "cubic"), Ints("axes", 3, 2), Int("exclude_outside", 1))
            .Node("Mul", ["u", "u"], ["y"]).Output("y"), label: "Resize 18, axes");
    }

    [Fact]
    public void Tile_along_the_image_axes() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 5]).Initializer("repeats", [1L, 2L, 3L, 1L], 4)
            .Initializer("w", Weights(6 * 2 * 9, 48), 2, 6, 3, 3)
            .Node("Tile", ["x", "repeats"], ["t"])
            .Node("Conv", ["t", "w"], ["y"], Ints("pads", 1, 1, 1, 1)).Output("y"), backwardUses: "ReduceSum");

    /// <summary>
    /// Two rows of the channels replaced by a function of the input (PyTorch's <c>x[:, i] = ...</c>):
    /// the batch on the second axis, negative and positive indices.
    /// </summary>
    [Fact]
    public void ScatterND_of_computed_updates_into_computed_data() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4])
            .Initializer("rows", [-1L, 0L], 2, 1).Initializer("start", [0L], 1).Initializer("end", [2L], 1).Initializer("axis", [1L], 1)
            .Node("Tanh", ["x"], ["t"]).Node("Transpose", ["t"], ["data"], Ints("perm", 1, 0, 2, 3))
            .Node("Slice", ["x", "start", "end", "axis"], ["first"]).Node("Sigmoid", ["first"], ["s"])
            .Node("Transpose", ["s"], ["updates"], Ints("perm", 1, 0, 2, 3))
            .Node("ScatterND", ["data", "rows", "updates"], ["scattered"])
            .Node("Transpose", ["scattered"], ["back"], Ints("perm", 1, 0, 2, 3))
            .Node("Mul", ["back", "x"], ["y"]).Output("y"), backwardUses: "GatherND");

    /// <summary>
    /// C's fmod of a computed dividend by a constant and by a computed divisor (∂b = −G·trunc(a/b)),
    /// and steps (Floor, Ceil) beside the identity, through which no gradient flows.
    /// </summary>
    [Fact]
    public void Mod_floor_and_ceil() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4]).Initializer("three", [3f]).Initializer("c", [0.7f, -0.9f, 1.3f, 0.6f], 4)
            .Node("Mul", ["x", "three"], ["a"]).Node("Mod", ["a", "c"], ["m"], Int("fmod", 1))
            .Node("Exp", ["x"], ["e"]).Node("Abs", ["x"], ["ax"]).Node("Add", ["ax", "c"], ["b"]).Node("Mod", ["e", "b"], ["k"], Int("fmod", 1))
            .Node("Floor", ["a"], ["f"]).Node("Ceil", ["e"], ["u"])
            .Node("Sum", ["m", "k", "f", "u", "x"], ["y"]).Output("y"), backwardUses: "Sign");

    /// <summary>
    /// Of three and four operands, broadcast. x ties relu(x) wherever x > 0 (−relu(−x) wherever
    /// x &lt; 0), and there their gradients differ under the guided and deconvnet rules where the
    /// gradient is negative (weights of both signs), so how the chained pairs split a tie (½ each,
    /// as libtorch's) shows in the input's gradient. The third operand loses to the pair.
    /// </summary>
    [Theory]
    [InlineData("Max", "relu", "tanh")]
    [InlineData("Min", "negative_part", "exp")]
    public void Max_and_min_of_several_operands_chain_the_pairs(string op, string tie, string third) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4]).Initializer("c", [0.5f, -0.25f, 1f, 0f], 4)
            .Initializer("w", Weights(16, 49), 4, 4)
            .Node("Relu", ["x"], ["relu"]).Node("Neg", ["x"], ["n"]).Node("Relu", ["n"], ["rn"]).Node("Neg", ["rn"], ["negative_part"])
            .Node("Tanh", ["x"], ["tanh"]).Node("Exp", ["x"], ["exp"])
            .Node(op, ["x", tie, third], ["three"]).Node(op, [third, "c", "three", "x"], ["four"])
            .Node("Add", ["three", "four"], ["sum"]).Node("Mul", ["sum", "w"], ["m"])
            .Node("GlobalAveragePool", ["m"], ["g"]).Node("Flatten", ["g"], ["y"]).Output("y"));

    [Fact]
    public void A_resize_or_lrn_whose_matrix_would_be_huge_has_no_rule()
    {
        // An untrusted model's sizes must not make the backward's writer allocate gigabytes.
        AssertNoRule(new OnnxTestModel(18, [2, 1, 1, 5000]).Initializer("sizes", [4000L], 1)
            .Node("Resize", ["x", "", "", "sizes"], ["y"], Ints("axes", 3)).Output("y"), "4000×5000");
        AssertNoRule(new OnnxTestModel(13, [2, 5000, 1, 1]).Node("LRN", ["x"], ["y"], Int("size", 3)).Output("y"), "5000×5000");
    }

    [Fact]
    public void A_resize_whose_sizes_come_from_the_input_values_has_no_rule() =>
        AssertNoRule(new OnnxTestModel(13, [2, 1, 4, 4]).Initializer("base", [2L, 1L, 4L], 3)
            .Node("ReduceMax", ["x"], ["peak"], Int("keepdims", 0))
            .Node("Cast", ["peak"], ["width"], Int("to", (long)SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType.Int64))
            .Node("Unsqueeze", ["width", "zero"], ["wide"])
            .Initializer("zero", [0L], 1)
            .Node("Concat", ["base", "wide"], ["sizes"], Int("axis", 0))
            .Node("Resize", ["x", "", "", "sizes"], ["y"]).Output("y"), "computed from the input's values");

    [Fact]
    public void A_backward_of_more_than_MaxNodes_nodes_is_left_to_autograd()
    {
        // An untrusted chain of element-wise nodes: ONNX Runtime would take minutes to load its backward.
        var builder = new OnnxTestModel(13, [2, 4]);
        var previous = "x";
        for (var i = 0; i < BackwardGraph.MaxNodes; i++)
        {
            builder.Node(i % 2 == 0 ? "Neg" : "Relu", [previous], [$"v{i}"]);
            previous = $"v{i}";
        }
        AssertNoRule(builder.Node("Identity", [previous], ["y"]).Output("y"), $"at most {BackwardGraph.MaxNodes}");
    }

    private static void AssertNoRule(OnnxTestModel builder, string reason)
    {
        var model = builder.Model();
        using var mirror = GraphMirror.Build(model, "x", model.Graph.Output[0].Name).Mirror!;
        var error = Assert.Throws<NotSupportedException>(() => OrtBackprop.Create(model, mirror, builder.InputShape, batched: true, TestSessions.Open));
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Log_of_a_positive_input() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4]).Node("Log", ["x"], ["l"]).Node("Mul", ["l", "x"], ["y"]).Output("y"), low: 0.25f, high: 3);

    [Fact]
    public void Hard_swish_and_gelu_around_their_kinks() =>
        Parity.CheckGradients(new OnnxTestModel(20, [2, 3, 5, 5])
            .Node("HardSwish", ["x"], ["h"]).Node("Gelu", ["h"], ["y"]).Output("y"), low: -5, high: 5);

    [Fact]
    public void Sqrt_reciprocal_pow_and_division_by_a_computed_value() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4])
            .Node("Exp", ["x"], ["e"])
            .Node("Sqrt", ["e"], ["r"])
            .Node("Reciprocal", ["r"], ["inv"])
            .Initializer("p", [3f])
            .Node("Pow", ["x", "p"], ["cube"])
            .Node("Div", ["cube", "r"], ["d"])
            .Node("Add", ["d", "inv"], ["y"]).Output("y"), low: -1, high: 1);

    /// <summary>
    /// Computed exponents: of a positive base, of a constant base (2ˣ), and of a base that is 0
    /// where the exponent is ≥ 0 (whose ∂b is 0 there, as libtorch's, not 0·ln 0); and a constant
    /// integer exponent, which the backward reads as float.
    /// </summary>
    [Fact]
    public void Pow_of_computed_exponents() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 4]).Initializer("half", [0.5f]).Initializer("two", [2f]).Initializer("one", [1f])
            .Initializer("cube", [3L])
            .Node("Sigmoid", ["x"], ["s"]).Node("Add", ["s", "half"], ["base"]).Node("Tanh", ["x"], ["t"])
            .Node("Pow", ["base", "t"], ["p"])
            .Node("Pow", ["two", "t"], ["q"])
            .Node("Relu", ["x"], ["r"]).Node("Add", ["s", "one"], ["e"]).Node("Pow", ["r", "e"], ["z"])
            .Node("Pow", ["x", "cube"], ["c"])
            .Node("Sum", ["p", "q", "z", "c"], ["y"]).Output("y"));

    [Theory]
    [InlineData(13, -1L)]
    [InlineData(13, 1L)]
    [InlineData(11, -1L)]
    public void Softmax_and_log_softmax_inside_the_graph(int opset, long axis) =>
        Parity.CheckGradients(new OnnxTestModel(opset, [2, 4, 5])
            .Initializer("w", Weights(5 * 5, 11), 5, 5)
            .Node("MatMul", ["x", "w"], ["logits"])
            .Node("Softmax", ["logits"], ["p"], Int("axis", axis))
            .Node("LogSoftmax", ["x"], ["l"], Int("axis", axis))
            .Node("Mul", ["p", "l"], ["y"]).Output("y"), label: $"opset {opset}, axis {axis}");

    [Fact]
    public void Layer_normalization_fused_and_decomposed()
    {
        Parity.CheckGradients(new OnnxTestModel(17, [2, 5, 6])
            .Initializer("scale", Weights(6, 12), 6).Initializer("bias", Weights(6, 13), 6)
            .Node("LayerNormalization", ["x", "scale", "bias"], ["n"], Float("epsilon", 1e-5f))
            .Node("Mul", ["n", "x"], ["y"]).Output("y"), label: "LayerNormalization");
        // As opsets before 17 export it: ReduceMean, Sub, Pow, Sqrt, Div.
        Parity.CheckGradients(new OnnxTestModel(13, [2, 5, 6])
            .Initializer("two", [2f]).Initializer("eps", [1e-5f]).Initializer("scale", Weights(6, 14), 6)
            .Node("ReduceMean", ["x"], ["mean"], Ints("axes", -1))
            .Node("Sub", ["x", "mean"], ["centred"])
            .Node("Pow", ["centred", "two"], ["squares"])
            .Node("ReduceMean", ["squares"], ["variance"], Ints("axes", -1))
            .Node("Add", ["variance", "eps"], ["shifted"])
            .Node("Sqrt", ["shifted"], ["deviation"])
            .Node("Div", ["centred", "deviation"], ["normalised"])
            .Node("Mul", ["normalised", "scale"], ["y"]).Output("y"), label: "decomposed");
    }

    [Fact]
    public void Instance_normalization_over_planes_and_sequences()
    {
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 5, 5])
            .Initializer("w1", Weights(4 * 3 * 9, 41), 4, 3, 3, 3).Initializer("scale", Weights(4, 42), 4).Initializer("bias", Weights(4, 43), 4)
            .Node("Conv", ["x", "w1"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("InstanceNormalization", ["c", "scale", "bias"], ["n"], Float("epsilon", 1e-3f))
            .Node("Relu", ["n"], ["r"])
            .Node("Mul", ["r", "c"], ["y"]).Output("y"), label: "2-D");
        Parity.CheckGradients(new OnnxTestModel(13, [2, 4, 6])
            .Initializer("scale", Weights(4, 44), 4).Initializer("bias", Weights(4, 45), 4)
            .Node("InstanceNormalization", ["x", "scale", "bias"], ["n"])
            .Node("Mul", ["n", "x"], ["y"]).Output("y"), label: "1-D");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)] // ONNX Runtime takes odd sizes only
    public void Local_response_normalization_after_a_conv(long size) =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4, 5])
            .Initializer("w", Weights(7 * 3 * 9, 49), 7, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("LRN", ["c"], ["y"], Int("size", size), Float("alpha", 0.5f), Float("beta", 0.75f), Float("bias", 1.5f)).Output("y"),
            label: $"size {size}");

    /// <summary>
    /// At an input of exactly 0 (a black pixel), where a formula with |x| or max(x, 0) would give
    /// autograd a kink: softplus' = σ(0) = ½, mish' = tanh(ln 2) + 0. And far out, where eˣ
    /// overflows float32 (above 88): no NaN from the branch the mirror's softplus does not take.
    /// </summary>
    [Theory]
    [InlineData("Softplus", 13, 0f, 0f)]
    [InlineData("Mish", 18, 0f, 0f)]
    [InlineData("Softplus", 13, -120f, 120f)]
    [InlineData("Mish", 18, -120f, 120f)]
    public void Softplus_and_mish_at_zero_and_far_out(string op, int opset, float low, float high) =>
        Parity.CheckGradients(new OnnxTestModel(opset, [2, 3, 4, 4]).Initializer("w", Weights(16, 50), 4, 4)
            .Node(op, ["x"], ["f"]).Node("Mul", ["f", "w"], ["y"]).Output("y"), low: low, high: high);

    [Fact]
    public void Mish_over_its_whole_curve() =>
        Parity.CheckGradients(new OnnxTestModel(18, [2, 3, 4, 4]).Node("Mish", ["x"], ["m"]).Node("Mul", ["m", "x"], ["y"]).Output("y"), low: -6, high: 6);

    [Fact]
    public void Self_attention_with_batched_matmuls() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 4, 6])
            .Initializer("wq", Weights(36, 15), 6, 6).Initializer("wk", Weights(36, 16), 6, 6).Initializer("wv", Weights(36, 17), 6, 6)
            .Initializer("heads", [0L, 0L, 2L, 3L], 4)
            .Node("MatMul", ["x", "wq"], ["q0"]).Node("MatMul", ["x", "wk"], ["k0"]).Node("MatMul", ["x", "wv"], ["v0"])
            .Node("Reshape", ["q0", "heads"], ["q1"]).Node("Transpose", ["q1"], ["q"], Ints("perm", 0, 2, 1, 3))
            .Node("Reshape", ["k0", "heads"], ["k1"]).Node("Transpose", ["k1"], ["kt"], Ints("perm", 0, 2, 3, 1))
            .Node("Reshape", ["v0", "heads"], ["v1"]).Node("Transpose", ["v1"], ["v"], Ints("perm", 0, 2, 1, 3))
            .Node("MatMul", ["q", "kt"], ["scores"])
            .Node("Softmax", ["scores"], ["attention"], Int("axis", -1))
            .Node("MatMul", ["attention", "v"], ["y"]).Output("y"));

    [Fact]
    public void Class_token_gather_slice_split_concat_roll_expand_and_cast()
    {
        // ViT's head reads the class token: Gather of index 0 along the tokens.
        Parity.CheckGradients(new OnnxTestModel(13, [2, 5, 4]).Initializer("zero", [0L])
            .Node("Tanh", ["x"], ["t"]).Node("Gather", ["t", "zero"], ["y"], Int("axis", 1)).Output("y"), label: "gather");
        // torch.roll as Swin exports it: two Slices and a Concat; then Split and Expand.
        Parity.CheckGradients(new OnnxTestModel(13, [2, 6, 4])
            .Initializer("s0", [4L], 1).Initializer("e0", [6L], 1).Initializer("s1", [0L], 1).Initializer("e1", [4L], 1).Initializer("axis1", [1L], 1)
            .Initializer("sizes", [2L, 4L], 2).Initializer("shape", [1L, 3L, 2L, 4L], 4)
            .Node("Slice", ["x", "s0", "e0", "axis1"], ["tail"]).Node("Slice", ["x", "s1", "e1", "axis1"], ["head"])
            .Node("Concat", ["tail", "head"], ["rolled"], Int("axis", 1))
            .Node("Split", ["rolled", "sizes"], ["a", "b"], Int("axis", 1))
            .Node("Sigmoid", ["a"], ["sa"])
            .Node("Unsqueeze", ["sa", "axis1"], ["u"])
            .Node("Expand", ["u", "shape"], ["wide"])
            .Node("Cast", ["wide"], ["cast"], Int("to", 1))
            .Node("ReduceSum", ["cast", "axis1"], ["summed"], Int("keepdims", 0))
            .Node("Concat", ["summed", "b"], ["y"], Int("axis", 1)).Output("y"), label: "roll");
    }

    [Fact]
    public void Where_with_a_mask_from_constants() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4])
            .Initializer("mask", [1f, 0f, 1f, 0f, 0f, 1f, 1f, 0f, 1f, 1f, 0f, 0f], 3, 4)
            .Initializer("half", [0.5f])
            .Node("Greater", ["mask", "half"], ["condition"])
            .Node("Sigmoid", ["x"], ["s"])
            .Node("Where", ["condition", "x", "s"], ["y"]).Output("y"));

    /// <summary>Slice bounds made from the input's shape (not its values), as exporters write padding removal.</summary>
    [Fact]
    public void Slice_with_bounds_computed_from_the_shape() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 6])
            .Initializer("two", [2L]).Initializer("one", [1L], 1).Initializer("axes", [2L], 1).Initializer("zero", [0L], 1)
            .Node("Shape", ["x"], ["shape"])
            .Node("Gather", ["shape", "two"], ["width"])
            .Node("Unsqueeze", ["width", "zero"], ["width1"])
            .Node("Sub", ["width1", "one"], ["end"])
            .Node("Slice", ["x", "one", "end", "axes"], ["inner"])
            .Node("Sigmoid", ["inner"], ["y"]).Output("y"));

    /// <summary>Swin's window attention splits q, k and v off a tensor whose batch is its second dimension.</summary>
    [Fact]
    public void Batch_in_the_second_dimension() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 3, 4])
            .Initializer("q", [0L]).Initializer("k", [1L])
            .Node("Transpose", ["x"], ["t"], Ints("perm", 1, 0, 2))
            .Node("Gather", ["t", "q"], ["a"], Int("axis", 0))
            .Node("Gather", ["t", "k"], ["b"], Int("axis", 0))
            .Node("Mul", ["a", "b"], ["y"]).Output("y"));

    /// <summary>Swin's patch merging: every other row and column, four ways, side by side.</summary>
    [Fact]
    public void Strided_slices_as_patch_merging_takes_them() =>
        Parity.CheckGradients(new OnnxTestModel(13, [2, 6, 5, 3])
            .Initializer("zero", [0L, 0L], 2).Initializer("one", [1L, 1L], 2).Initializer("end", [long.MaxValue, long.MaxValue], 2)
            .Initializer("axes", [1L, 2L], 2).Initializer("two", [2L, 2L], 2).Initializer("onezero", [1L, 0L], 2)
            .Node("Slice", ["x", "zero", "end", "axes", "two"], ["a"])
            .Node("Slice", ["x", "onezero", "end", "axes", "two"], ["b"])
            .Node("Slice", ["x", "one", "end", "axes", "two"], ["c"])
            .Node("Concat", ["a", "b"], ["ab"], Int("axis", -1))
            .Node("Mul", ["ab", "ab"], ["squares"])
            .Node("Tanh", ["c"], ["tc"])                                  // c has an odd number of columns: 2 of 5
            .Initializer("rest", [1L, 2L, 3L], 3)
            .Node("ReduceSum", ["squares", "rest"], ["s1"])
            .Node("ReduceSum", ["tc", "rest"], ["s2"])
            .Node("Concat", ["s1", "s2"], ["y"], Int("axis", 1)).Output("y"));
}
