using SaliencyService.Api.Inference;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Predict's ranking: the k highest scores in order, against a full sort of every score.</summary>
public sealed class TopScoresTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(37)]
    [InlineData(1000)]
    [InlineData(1500)]
    public void The_top_k_are_a_full_sorts_first_k_with_ties_by_index_and_NaN_last(int k)
    {
        var random = new Random(k);
        // Few distinct values, so ties are common; some NaN and infinities.
        var scores = Enumerable.Range(0, 1000).Select(_ => random.Next(12) switch
        {
            0 => float.NaN,
            1 => float.NegativeInfinity,
            2 => float.PositiveInfinity,
            var v => v / 4f - 1,
        }).ToArray();
        string[] labels = [.. Enumerable.Range(0, 990).Select(i => $"class {i}")];

        var expected = Enumerable.Range(0, scores.Length)
            .OrderByDescending(i => float.IsNaN(scores[i]) ? float.NegativeInfinity : scores[i])
            .ThenBy(i => i)
            .Take(k)
            .ToArray();
        var top = Predictor.Top(scores, k, labels);

        Assert.Equal(expected, top.Select(t => t.Index));
        Assert.All(top, t => Assert.Equal(scores[t.Index], t.Score));
        Assert.All(top, t => Assert.Equal(t.Index < labels.Length ? labels[t.Index] : null, t.Label));
    }
}
