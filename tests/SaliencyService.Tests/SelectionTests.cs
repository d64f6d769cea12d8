using SaliencyService.Explain.Rendering;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>The k-th smallest value is the one a full sort puts at k, for every k.</summary>
public sealed class SelectionTests
{
    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 1)]
    [InlineData(7, 2)]
    [InlineData(50, 3)]
    [InlineData(301, 4)]
    public void The_kth_smallest_is_the_sorted_kth(int count, int seed)
    {
        var random = new Random(seed);
        double[] special = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0.0, -0.0];
        // Few distinct values (ties), some special ones.
        var values = Enumerable.Range(0, count)
            .Select(_ => random.Next(8) == 0 ? special[random.Next(special.Length)] : random.Next(count / 3 + 1) * 0.5 - 3).ToArray();
        var sorted = values.ToArray();
        Array.Sort(sorted);
        for (var k = 0; k < count; k++)
            Assert.Equal(sorted[k], Selection.Smallest(values.ToArray(), k));
    }

    /// <summary>A map's size, with ties and NaN, at the clips a picture uses (the 99.5th percentile, the 100th) and next to them.</summary>
    [Fact]
    public void The_percentiles_near_the_top_of_a_map_are_the_sorted_ones()
    {
        var random = new Random(9);
        var values = Enumerable.Range(0, 50_176).Select(_ => random.Next(50) == 0 ? double.NaN : Math.Round(random.NextDouble() * 1e3) / 7).ToArray();
        var sorted = values.ToArray();
        Array.Sort(sorted);
        foreach (var k in new[] { values.Length - 1, values.Length - 2, (int)Math.Round(0.995 * (values.Length - 1)), values.Length / 2 })
            Assert.Equal(sorted[k], Selection.Smallest(values.ToArray(), k));
    }

    [Fact]
    public void Sorted_and_reversed_inputs_select_in_order()
    {
        var ascending = Enumerable.Range(0, 1000).Select(i => (double)i).ToArray();
        Assert.Equal(995, Selection.Smallest(ascending.ToArray(), 995));
        Assert.Equal(3, Selection.Smallest(ascending.Reverse().ToArray(), 3));
    }

    [Fact]
    public void A_k_outside_the_values_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Selection.Smallest([1.0], 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Selection.Smallest([1.0], -1));
    }
}
