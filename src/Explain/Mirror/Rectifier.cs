using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// A rectifier y = clamp(x, 0, upper) (Relu: upper = ∞; ReLU6: upper = 6) whose backward follows
/// a <see cref="RectifierRule"/>. The true-gradient rule uses libtorch's own ops.
/// </summary>
public static class Rectifier
{
    /// <summary>
    /// The upper bound when the node is a rectifier (Relu: ∞; Clip with a constant min of 0: its
    /// max), else null. Clip takes min/max as attributes before opset 11 and as inputs after.
    /// </summary>
    public static double? UpperBound(OpContext node)
    {
        if (node.OpType == "Relu") return double.PositiveInfinity;
        if (node.OpType != "Clip") return null;
        double? min, max;
        if (node.Opset < 11)
        {
            min = node.Attributes.Has("min") ? node.Attributes.Float("min", 0) : null;
            max = node.Attributes.Float("max", float.PositiveInfinity);
        }
        else
        {
            min = node.HasInput(1) ? Scalar(node.Constant(1)) : null;
            max = node.HasInput(2) ? Scalar(node.Constant(2)) : double.PositiveInfinity;
        }
        return min == 0 && max is > 0 ? max : null;
    }

    private static double? Scalar(Tensor? constant) =>
        constant is null || constant.NumberOfElements != 1 ? null : constant.to_type(ScalarType.Float64).item<double>();

    /// <summary>
    /// Guided backprop is the rectifier's own (native) backward — which gates by its local
    /// derivative — fed with the positive part of the incoming gradient, so only that clamp is
    /// custom and libtorch keeps its fused rectifier backward. Deconvnet passes the positive part
    /// through ungated.
    /// </summary>
    public static Tensor Apply(Tensor x, double upper, RectifierRule rule) => rule switch
    {
        RectifierRule.Gradient => Rectify(x, upper),
        RectifierRule.GuidedBackprop => PositiveGradient.apply(Rectify(x, upper)),
        RectifierRule.Deconvnet => DeconvnetRectifier.apply(x, upper),
        _ => throw new ArgumentOutOfRangeException(nameof(rule)),
    };

    /// <summary>
    /// The rectifier's backward in the backward graph, as its graph's rule
    /// (<see cref="BackwardGraph.Rule"/>) has it: the gradient (guided backprop: its positive part,
    /// a Relu that ONNX Runtime fuses into the convolution before it where there is one) times a
    /// gate that is 1 where the recorded output y ∈ [0, upper] has 0 &lt; y &lt; upper (libtorch's
    /// relu and hardtanh backward gate the same way) and 0 elsewhere; deconvnet's positive part
    /// everywhere, ungated. Where a max pool's own kernel computed the whole gradient from y, that
    /// kernel gates it (<see cref="BackwardGraph.FoldedRectifier"/>).
    /// </summary>
    public static GradientRule Gradient(double upper) => new((graph, node) =>
    {
        var gradient = node.OutputGradients[0]!;
        if (graph.Rule == RectifierRule.Deconvnet) return [graph.Node("Relu", [gradient])];
        var y = graph.Recorded(node.Outputs[0]);
        var guided = graph.Rule == RectifierRule.GuidedBackprop;
        if (graph.FoldedRectifier(gradient, y, upper, guided) is { } folded) return [folded];
        string Gated(string incoming, string gate) => graph.Node("Mul", [guided ? graph.Node("Relu", [incoming]) : incoming, gate]);
        if (node.OutputShapes[0] is not [_, var channels, _, _] || channels % BlockChannels != 0) return [Gated(gradient, Gate(graph, y, upper))];
        return [Gated(graph.Blocked(gradient) ? gradient : BlockedCopy(graph, gradient, channels), BlockedGate(graph, y, channels, upper))];
    });

    /// <summary>
    /// The gate as one HardSigmoid, min(2¹²⁶·d, 1), of the distance d from the flat parts: y for
    /// ReLU, y·(upper − y) for ReLU6: 1 for any normal d, 0 at 0 (only a d below 10⁻³⁸ passes a
    /// fraction). Two ops for ReLU, four for ReLU6; comparisons and selects, or Sign, are slower in
    /// ONNX Runtime.
    /// </summary>
    private static string Gate(BackwardGraph graph, string y, double upper)
    {
        var distance = double.IsPositiveInfinity(upper) ? y : graph.Node("Mul", [y, graph.Node("Sub", [graph.Scalar((float)upper), y])]);
        return graph.Node("HardSigmoid", [distance], BackwardGraph.Attribute("alpha", GateScale), BackwardGraph.Attribute("beta", 0f));
    }

    /// <summary>
    /// The same gate for an image activation whose channels fill ONNX Runtime's channel blocks:
    /// clip(2¹²⁶·y, 0, 1), and for ReLU6 also clip(s·(upper − y), 0, 1), each a per-channel 1×1
    /// convolution with its clip fused. ONNX Runtime keeps those, and the Mul after them, in the
    /// blocked layout its convolutions produce and read, where HardSigmoid and Sub force two
    /// reorders of the activation and of the gradient per rectifier.
    /// </summary>
    private static string BlockedGate(BackwardGraph graph, string y, long channels, double upper)
    {
        var above = ClippedScale(graph, y, channels, GateScale, 0f);
        if (double.IsPositiveInfinity(upper)) return above;
        // A power of two with s·upper near 2¹⁰⁰ (at most 2¹²⁶): s·y is exact, and the smallest gap
        // below upper (upper·2⁻²⁴) still maps past 1.
        var scale = MathF.ScaleB(1f, Math.Min(126, 100 - (int)Math.Ceiling(Math.Log2(upper))));
        var below = ClippedScale(graph, y, channels, -scale, scale * (float)upper);
        return graph.Node("Mul", [above, below]);
    }

    /// <summary>
    /// A gradient that arrives outside the blocked layout (a strided ConvTranspose's, a pooling's
    /// or the classifier's) taken into it by a per-channel 1×1 convolution of weight 1 (exact). It
    /// costs the reorder that the next convolution would make of the gated gradient anyway; in
    /// return the guided Relu fuses into it, the gate's product reads the gate where it is, and
    /// the residual sums after it fuse into the backward's convolutions.
    /// </summary>
    private static string BlockedCopy(BackwardGraph graph, string gradient, long channels) =>
        graph.Node("Conv", [gradient, graph.Constant(ones(channels, 1, 1, 1))], BackwardGraph.Attribute("group", channels));

    /// <summary>clip(weight·y + bias, 0, 1) per channel, as a depthwise 1×1 convolution and a Clip.</summary>
    private static string ClippedScale(BackwardGraph graph, string y, long channels, float weight, float bias)
    {
        var scaled = graph.Node("Conv", [y, graph.Constant(Scalars.With(weight, w => full(channels, 1, 1, 1, w))), graph.Constant(Scalars.With(bias, b => full(channels, b)))],
            BackwardGraph.Attribute("group", channels));
        return graph.Node("Clip", [scaled, graph.Scalar(0f), graph.Scalar(1f)]);
    }

    /// <summary>2¹²⁶: maps the smallest normal float to 1 or more.</summary>
    private const float GateScale = 8.507059e37f;

    /// <summary>ONNX Runtime's blocked (NCHWc) kernels take channel counts in blocks of 16 (AVX-512; 8 with AVX2).</summary>
    private const long BlockChannels = 16;

    private static Tensor Rectify(Tensor x, double upper) => double.IsPositiveInfinity(upper) ? x.relu() : x.Clamp(0, upper);

    /// <summary>Identity forward; backward keeps only the positive part of the gradient (a singleton: it has no state).</summary>
    private sealed class PositiveGradient : autograd.SingleTensorFunction<PositiveGradient>
    {
        public override string Name => nameof(PositiveGradient);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).alias();

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => [gradOutput.clamp_min(Scalars.Zero)];
    }

    /// <summary>The rectifier forward; backward passes the positive part of the gradient ungated.</summary>
    private sealed class DeconvnetRectifier : autograd.SingleTensorFunction<DeconvnetRectifier>
    {
        public override string Name => nameof(DeconvnetRectifier);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars) => Rectify((Tensor)vars[0], (double)vars[1]);

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => [gradOutput.clamp_min(Scalars.Zero), null!];
    }
}
