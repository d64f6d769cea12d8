using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Reductions: axes as an attribute until opset 18 (ReduceSum: 13), then as an input.</summary>
internal static class ReduceOps
{
    [OnnxOp("ReduceMean")]
    private static OpKernel MeanAttribute(OpContext node) => Reduce(node, fromInput: false, (x, axes, keep) => x.mean(axes, keep));

    [OnnxOp("ReduceMean", 18)]
    private static OpKernel MeanInput(OpContext node) => Reduce(node, fromInput: true, (x, axes, keep) => x.mean(axes, keep));

    [OnnxOp("ReduceSum")]
    private static OpKernel SumAttribute(OpContext node) => Reduce(node, fromInput: false, (x, axes, keep) => x.sum(axes, keep));

    [OnnxOp("ReduceSum", 13)]
    private static OpKernel SumInput(OpContext node) => Reduce(node, fromInput: true, (x, axes, keep) => x.sum(axes, keep));

    [OnnxOp("ReduceMax")]
    private static OpKernel MaxAttribute(OpContext node) => Reduce(node, fromInput: false, (x, axes, keep) => x.amax(axes, keep));

    [OnnxOp("ReduceMax", 18)]
    private static OpKernel MaxInput(OpContext node) => Reduce(node, fromInput: true, (x, axes, keep) => x.amax(axes, keep));

    [OnnxOp("ReduceMin")]
    private static OpKernel MinAttribute(OpContext node) => Reduce(node, fromInput: false, (x, axes, keep) => x.amin(axes, keep));

    [OnnxOp("ReduceMin", 18)]
    private static OpKernel MinInput(OpContext node) => Reduce(node, fromInput: true, (x, axes, keep) => x.amin(axes, keep));

    /// <summary>No axes: every axis, unless noop_with_empty_axes makes it the identity.</summary>
    private static OpKernel Reduce(OpContext node, bool fromInput, Func<Tensor, long[], bool, Tensor> reduce)
    {
        var keep = node.Attributes.Int("keepdims", 1) != 0;
        var noop = node.Attributes.Int("noop_with_empty_axes", 0) != 0;
        var attributeAxes = node.Attributes.Ints("axes");
        return (x, _) =>
        {
            var input = x[0]!;
            var axes = fromInput ? (x.Length > 1 && x[1] is { } a ? OpHelpers.Longs(a) : null) : attributeAxes;
            if (axes is null || axes.Length == 0)
            {
                if (noop) return [input];
                axes = Enumerable.Range(0, (int)input.dim()).Select(d => (long)d).ToArray();
            }
            return [reduce(input, axes.Select(a => OpHelpers.Axis(a, input.dim())).ToArray(), keep)];
        };
    }
}
