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

    /// <summary>∂x = G broadcast back over the reduced axes (÷ their size for a mean); axes must be known while building.</summary>
    [OnnxGradient("ReduceMean")]
    private static GradientRule MeanGradient(OpContext node) => SpreadGradient(node, mean: true);

    [OnnxGradient("ReduceSum")]
    private static GradientRule SumGradient(OpContext node) => SpreadGradient(node, mean: false);

    private static GradientRule SpreadGradient(OpContext node, bool mean) => new((graph, n) =>
    {
        var (reduced, keep) = Reduced(node, n, fromInput: node.Opset >= (mean ? 18 : 13));
        var inputShape = n.InputShapes[0]!;
        var g = keep ? n.OutputGradients[0]! : graph.Node("Unsqueeze", [n.OutputGradients[0]!, graph.Ints(reduced)]);
        // Expand broadcasts bidirectionally, so the batch dimension (−1) is asked for as 1.
        var spread = graph.Node("Expand", [g, graph.Ints(inputShape.Select(d => Math.Max(d, 1)).ToArray())]);
        var count = reduced.Aggregate(1L, (p, x) => p * inputShape[x]);
        return [mean ? graph.Node("Mul", [spread, graph.Scalar(1f / count)]) : spread, null];
    });

    /// <summary>
    /// ∂x = G on the cells equal to the reduction's maximum (minimum), shared equally where several
    /// tie (as libtorch's amax and amin, the mirror's kernels), 0 elsewhere.
    /// </summary>
    [OnnxGradient("ReduceMax")]
    [OnnxGradient("ReduceMin")]
    private static GradientRule ExtremeGradient(OpContext node) => new((graph, n) =>
    {
        var (reduced, keep) = Reduced(node, n, fromInput: node.Opset >= 18);
        return [PoolOps.ExtremeGradient(graph, n, reduced, keep), null];
    });

    /// <summary>The axes a reduction reduces (all where none are given) and whether it keeps them; known while building.</summary>
    private static (long[] Reduced, bool Keep) Reduced(OpContext node, GradientNode n, bool fromInput)
    {
        var noop = node.Attributes.Int("noop_with_empty_axes", 0) != 0;
        var keep = node.Attributes.Int("keepdims", 1) != 0;
        // Axes: the attribute, or an input that is constant or computed from shapes alone.
        var axes = !fromInput ? node.Attributes.Ints("axes") ?? []
            : !node.HasInput(1) ? []
            : n.Constants[1] is { } a ? OpHelpers.Longs(a)
            : throw new NotSupportedException("a reduction over computed axes has no backward rule");
        if (axes.Length == 0 && noop) throw new NotSupportedException("an empty reduction (noop_with_empty_axes) has no backward rule");
        var inputShape = n.InputShapes[0]!;
        var reduced = (axes.Length == 0 ? Enumerable.Range(0, inputShape.Length).Select(d => (long)d) : axes.Select(x => OpHelpers.Axis(x, inputShape.Length)))
            .ToArray();
        if (reduced.Any(x => inputShape[x] < 0)) throw new NotSupportedException("a reduction over the batch dimension has no backward rule");
        return (reduced, keep);
    }

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
