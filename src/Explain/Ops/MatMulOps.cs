using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Matrix products.</summary>
internal static class MatMulOps
{
    [OnnxOp("MatMul")]
    private static OpKernel MatMul(OpContext node) => (x, _) => [x[0]!.matmul(x[1]!)];

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
