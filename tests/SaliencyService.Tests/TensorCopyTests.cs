using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// A libtorch tensor's values copied out in one block: row-major, float32, whatever its layout and
/// type; and a managed sample's values copied into a libtorch tensor of its own.
/// </summary>
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

    [Fact]
    public void A_sample_goes_into_a_tensor_of_its_own_shape_and_values()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        float[] values = [.. Enumerable.Range(0, 24).Select(i => i * 0.25f - 2)];
        var sample = new FloatTensor(values, [1, 2, 3, 4]);
        var copy = TensorCopy.ToTensor(sample);
        Assert.Equal([1L, 2, 3, 4], copy.shape);
        Assert.Equal(values, TensorCopy.Floats(copy));
        values[5] = 100; // the tensor keeps its own copy
        Assert.Equal(-0.75f, copy[0, 0, 1, 1].item<float>());
    }

    [Fact]
    public void A_sample_whose_shape_does_not_hold_its_values_is_refused()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => TensorCopy.ToTensor(new FloatTensor(new float[10], [1, 3, 2, 2])));
        Assert.Throws<ArgumentException>(() => TensorCopy.ToTensor(new FloatTensor(new float[12], [1, 2, 2, 2])));
    }
}
