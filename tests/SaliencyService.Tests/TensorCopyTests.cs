using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>A libtorch tensor's values copied out in one block: row-major, float32, whatever its layout and type.</summary>
public sealed class TensorCopyTests
{
    [Fact]
    public void A_transposed_float64_tensor_comes_out_row_major_as_float32()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        double[] values = [.. Enumerable.Range(0, 24).Select(i => i * 0.5 - 3)];
        var transposed = tensor(values, [2, 3, 4]).permute(2, 0, 1); // [4, 2, 3], not contiguous
        var expected = new float[24];
        for (var a = 0; a < 4; a++)
            for (var b = 0; b < 2; b++)
                for (var c = 0; c < 3; c++)
                    expected[(a * 2 + b) * 3 + c] = (float)values[(b * 3 + c) * 4 + a];
        Assert.Equal(expected, TensorCopy.Floats(transposed));
        Assert.Equal(ScalarType.Float64, transposed.dtype); // (the tensor itself is left as it was)
    }
}
