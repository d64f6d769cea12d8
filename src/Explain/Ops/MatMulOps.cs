using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Matrix products.</summary>
internal static class MatMulOps
{
    [OnnxOp("MatMul")]
    private static OpKernel MatMul(OpContext node) => (x, _) => [x[0]!.matmul(x[1]!)];

    /// <summary>
    /// ∂A = G · Bᵀ, ∂B = Aᵀ · G over the last two axes, each summed back over broadcast batch
    /// axes; a constant operand is transposed by a node over the weight it reads
    /// (<see cref="BackwardGraph.ConstantInput"/>), which ONNX Runtime folds. Rank-1 operands have no rule.
    /// </summary>
    [OnnxGradient("MatMul")]
    private static GradientRule MatMulGradient(OpContext node) => new((graph, n) =>
    {
        if (n.InputShapes.Any(s => s is null || s.Length < 2)) throw new NotSupportedException("a MatMul with a vector operand has no backward rule");
        string Transposed(int i) => graph.Node("Transpose", [n.Constants[i] is null ? graph.Recorded(n.Inputs[i]) : graph.ConstantInput(n, i)],
            BackwardGraph.Attribute("perm", SwapLast(n.InputShapes[i]!.Length)));
        var g = n.OutputGradients[0]!;
        var output = n.OutputShapes[0]!;
        return
        [
            n.Wanted[0] ? graph.SumToShape(graph.Node("MatMul", [g, Transposed(1)]), [.. output[..^2], .. n.InputShapes[0]![^2..]], n.InputShapes[0]!) : null,
            n.Wanted[1] ? graph.SumToShape(graph.Node("MatMul", [Transposed(0), g]), [.. output[..^2], .. n.InputShapes[1]![^2..]], n.InputShapes[1]!) : null,
        ];
    });

    private static long[] SwapLast(int rank) => [.. Enumerable.Range(0, rank - 2).Select(d => (long)d), rank - 1, rank - 2];

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
            var a = graph.Node("Gemm", [n.OutputGradients[0]!, graph.ConstantInput(n, 1)],
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
            if (alpha != 1f) y = y.Times(alpha);
            if (x.Length > 2 && x[2] is { } c) y = y.Plus(beta == 1f ? c : c.Times(beta));
            return [y];
        };
    }
}
