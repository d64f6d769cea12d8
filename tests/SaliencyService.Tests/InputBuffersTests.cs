using SaliencyService.Api.Inputs;
using Xunit;

namespace SaliencyService.Tests;

public sealed class InputBuffersTests
{
    private const int Large = InputBuffers.MinPooledLength;

    [Fact]
    public void A_returned_array_is_rented_again_for_its_exact_length_only()
    {
        var buffers = new InputBuffers();
        var first = buffers.Rent(Large);
        Assert.Equal(Large, first.Length);
        buffers.Return(first);
        Assert.Equal((long)Large * sizeof(float), buffers.KeptBytes);

        var other = buffers.Rent(Large + 1);
        Assert.NotSame(first, other);
        Assert.Equal(Large + 1, other.Length);
        Assert.Same(first, buffers.Rent(Large));
        Assert.Equal(0, buffers.KeptBytes);
        Assert.NotSame(first, buffers.Rent(Large)); // taken: a fresh one
    }

    [Fact]
    public void Small_arrays_are_left_to_the_gc()
    {
        var buffers = new InputBuffers();
        var small = buffers.Rent(Large - 1);
        buffers.Return(small);
        Assert.Equal(0, buffers.KeptBytes);
        Assert.NotSame(small, buffers.Rent(Large - 1));
    }

    [Fact]
    public void What_is_kept_stays_within_the_cap()
    {
        var buffers = new InputBuffers();
        var length = (int)(InputBuffers.MaxKeptBytes / sizeof(float) / 3);
        var arrays = Enumerable.Range(0, 5).Select(_ => buffers.Rent(length)).ToList();
        arrays.ForEach(buffers.Return);
        Assert.Equal(3L * length * sizeof(float), buffers.KeptBytes);
        var again = Enumerable.Range(0, 5).Select(_ => buffers.Rent(length)).ToList();
        Assert.Equal(3, again.Count(a => arrays.Contains(a)));
        Assert.Equal(0, buffers.KeptBytes);
    }

    [Fact]
    public void Concurrent_renters_never_share_an_array()
    {
        var buffers = new InputBuffers();
        var held = new System.Collections.Concurrent.ConcurrentDictionary<float[], byte>(ReferenceEqualityComparer.Instance);
        Parallel.For(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            var array = buffers.Rent(Large);
            Assert.True(held.TryAdd(array, 0), "an array was handed to two renters at once");
            Thread.SpinWait(50);
            Assert.True(held.TryRemove(array, out byte _));
            buffers.Return(array);
        });
    }
}
