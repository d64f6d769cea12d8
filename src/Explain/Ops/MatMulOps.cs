using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Matrix products.</summary>
internal static class MatMulOps
{
    [OnnxOp("MatMul")]
    private static OpKernel MatMul(OpContext node) => (x, _) => [x[0]!.matmul(x[1]!)];

    /// <summary>With a constant matrix B: ∂A = G · Bᵀ.</summary>
    [OnnxGradient("MatMul")]
    private static GradientRule? MatMulGradient(OpContext node) => node.Constant(1) is { } b && b.dim() == 2
        ? new((graph, n) => [graph.Node("MatMul", [n.OutputGradients[0]!, graph.Constant(n.Constants[1]!.t())]), null])
        : null;

    /// <summary>With a constant B: ∂A' = alpha · G · B'ᵀ, transposed back when A is.</summary>
    [OnnxGradient("Gemm")]
    private static GradientRule? GemmGradient(OpContext node)
    {
        if (node.Constant(1) is null) return null;
        var alpha = node.Attributes.Float("alpha", 1f);
        var transA = node.Attributes.Int("transA", 0) != 0;
        var transB = node.Attributes.Int("transB", 0) != 0;
        return new((graph, n) =>
        {
            var a = graph.Node("Gemm", [n.OutputGradients[0]!, graph.Constant(n.Constants[1]!)],
                BackwardGraph.Attribute("alpha", alpha), BackwardGraph.Attribute("transB", transB ? 0 : 1));
            return [transA ? graph.Node("Transpose", [a]) : a, null, null];
        });
    }

    /// <summary>Y = alpha · A' · B' + beta · C, with A' and B' optionally transposed.</summary>
    [OnnxOp("Gemm", 7)]
    private static OpKernel Gemm(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 1f);
        var beta = node.Attributes.Float("beta", 1f);
        var transA = node.Attributes.Int("transA", 0) != 0;
        var transB = node.Attributes.Int("transB", 0) != 0;
        return (x, _) =>
        {
            var a = transA ? x[0]!.t() : x[0]!;
            var b = transB ? x[1]!.t() : x[1]!;
            var y = a.matmul(b);
            if (alpha != 1f) y = y * alpha;
            if (x.Length > 2 && x[2] is { } c) y = y + (beta == 1f ? c : c * beta);
            return [y];
        };
    }
}
