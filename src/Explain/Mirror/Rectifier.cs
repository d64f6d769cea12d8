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

    public static Tensor Apply(Tensor x, double upper, RectifierRule rule) => rule switch
    {
        RectifierRule.Gradient => double.IsPositiveInfinity(upper) ? x.relu() : x.clamp(0, upper),
        RectifierRule.GuidedBackprop => ModifiedRectifier.apply(x, upper, true),
        RectifierRule.Deconvnet => ModifiedRectifier.apply(x, upper, false),
        _ => throw new ArgumentOutOfRangeException(nameof(rule)),
    };

    /// <summary>
    /// Custom autograd function (a singleton: all state lives in the context of each call).
    /// vars: input tensor, upper bound, whether to gate by the local derivative (guided).
    /// </summary>
    private sealed class ModifiedRectifier : autograd.SingleTensorFunction<ModifiedRectifier>
    {
        public override string Name => nameof(ModifiedRectifier);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var upper = (double)vars[1];
            ctx.save_for_backward([x]);
            ctx.save_data("upper", upper);
            ctx.save_data("guided", (bool)vars[2]);
            return double.IsPositiveInfinity(upper) ? x.relu() : x.clamp(0, upper);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var positive = gradOutput.clamp_min(0);
            if (!(bool)ctx.get_data("guided")) return [positive, null!, null!];

            var x = ctx.get_saved_variables()[0];
            var upper = (double)ctx.get_data("upper");
            var open = double.IsPositiveInfinity(upper) ? x.gt(0) : x.gt(0).logical_and(x.lt(upper));
            return [positive.mul(open), null!, null!];
        }
    }
}
