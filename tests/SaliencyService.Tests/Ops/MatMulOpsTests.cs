using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class MatMulOpsTests
{
    [Fact]
    public void MatMul_of_batched_and_plain_matrices()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4])
            .Initializer("w", Parity.RandomInput([4 * 5], 3, -1, 1), 4, 5)
            .Node("MatMul", ["x", "w"], ["y"]).Output("y"));
    }

    [Theory]
    [InlineData(0, 0, 1f, 1f)]
    [InlineData(0, 1, 1f, 1f)]
    [InlineData(1, 0, 0.5f, 2f)]
    [InlineData(1, 1, -1f, 0f)]
    public void Gemm_with_transposes_alpha_and_beta(long transA, long transB, float alpha, float beta)
    {
        long[] a = transA == 0 ? [3, 4] : [4, 3];
        long[] b = transB == 0 ? [4, 5] : [5, 4];
        Parity.Check(new OnnxTestModel(13, a)
            .Initializer("b", Parity.RandomInput([20], 4, -1, 1), b)
            .Initializer("c", Parity.RandomInput([5], 5, -1, 1), 5)
            .Node("Gemm", ["x", "b", "c"], ["y"], Int("transA", transA), Int("transB", transB), Float("alpha", alpha), Float("beta", beta))
            .Output("y"));
    }
}
