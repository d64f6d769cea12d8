using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Serving;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A batch's concatenation written into a kept array that may be longer than the batch: the
/// tensor is the array's first elements, and nothing past them leaks into its bytes or slices.
/// </summary>
public sealed class NamedTensorTests
{
    private static NamedTensor Samples(params float[][] samples) =>
        new("x", TensorElementType.Float, [samples.Length, 2], samples.SelectMany(s => s).ToArray());

    [Fact]
    public void A_concatenation_into_a_longer_array_is_its_prefix()
    {
        var kept = Enumerable.Repeat(99f, 10).ToArray();
        var batch = NamedTensor.Concatenate([Samples([1, 2]), Samples([3, 4], [5, 6])], kept);

        Assert.Same(kept, batch.Data);
        Assert.Equal([3L, 2], batch.Shape);
        Assert.Equal(6, batch.ElementCount);
        Assert.Equal(6 * sizeof(float), batch.Bytes.Length);
        Assert.Equal([1f, 2, 3, 4, 5, 6], kept[..6]);
        var last = batch.Slice(2, 1);
        Assert.Equal([5f, 6], (float[])last.Data);
        Assert.Equal([1L, 2], last.Shape);
    }

    [Fact]
    public void An_array_too_short_or_of_another_type_is_left_alone()
    {
        var parts = new[] { Samples([1, 2]), Samples([3, 4]) };
        var tooShort = new float[3];
        var otherType = new double[8];

        var first = NamedTensor.Concatenate(parts, tooShort);
        var second = NamedTensor.Concatenate(parts, otherType);

        Assert.NotSame(tooShort, first.Data);
        Assert.Equal([1f, 2, 3, 4], (float[])first.Data);
        Assert.Equal([1f, 2, 3, 4], (float[])second.Data);
        Assert.All(tooShort, v => Assert.Equal(0f, v));
        Assert.All(otherType, v => Assert.Equal(0d, v));
    }
}
