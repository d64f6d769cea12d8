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
    /// a Relu that ONNX Runtime fuses into the convolution before it where there is one) where the
    /// recorded output y ∈ [0, upper] has 0 &lt; y &lt; upper (libtorch's relu and hardtanh backward
    /// gate the same way); deconvnet's positive part everywhere. The gate is one HardSigmoid, min(2¹²⁶·d, 1), of the distance d from the flat
    /// parts: y for ReLU, y·(upper − y) for ReLU6 — 1 for any normal d, 0 at 0. Every op here is a
    /// memory-bound pass over the activation, and this takes the fewest ONNX Runtime has (two for
    /// ReLU, four for ReLU6; comparisons and selects, or Sign, are slower there). Only a d below
    /// 10⁻³⁸ passes a fraction.
    /// </summary>
    public static GradientRule Gradient(double upper) => new((graph, node) =>
    {
        var gradient = node.OutputGradients[0]!;
        if (graph.Rule == RectifierRule.Deconvnet) return [graph.Node("Relu", [gradient])];
        var y = graph.Recorded(node.Outputs[0]);
        var distance = double.IsPositiveInfinity(upper) ? y : graph.Node("Mul", [y, graph.Node("Sub", [graph.Scalar((float)upper), y])]);
        var gate = graph.Node("HardSigmoid", [distance], BackwardGraph.Attribute("alpha", GateScale), BackwardGraph.Attribute("beta", 0f));
        return [graph.Node("Mul", [graph.Rule == RectifierRule.GuidedBackprop ? graph.Node("Relu", [gradient]) : gradient, gate])];
    });

    /// <summary>2¹²⁶: maps the smallest normal float to 1 or more.</summary>
    private const float GateScale = 8.507059e37f;

    private static Tensor Rectify(Tensor x, double upper) => double.IsPositiveInfinity(upper) ? x.relu() : x.clamp(0, upper);

    /// <summary>Identity forward; backward keeps only the positive part of the gradient (a singleton: it has no state).</summary>
    private sealed class PositiveGradient : autograd.SingleTensorFunction<PositiveGradient>
    {
        public override string Name => nameof(PositiveGradient);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).alias();

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => [gradOutput.clamp_min(0)];
    }

    /// <summary>The rectifier forward; backward passes the positive part of the gradient ungated.</summary>
    private sealed class DeconvnetRectifier : autograd.SingleTensorFunction<DeconvnetRectifier>
    {
        public override string Name => nameof(DeconvnetRectifier);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars) => Rectify((Tensor)vars[0], (double)vars[1]);

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => [gradOutput.clamp_min(0), null!];
    }
}
