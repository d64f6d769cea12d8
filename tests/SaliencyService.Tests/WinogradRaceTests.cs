using SaliencyService.Explain.Mirror;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// How <see cref="WinogradRace"/> reads its rounds: each side's fastest, so that rounds slowed by
/// other work on the host (the import's check runs beside the race) do not decide it. The rounds
/// here are a convolution's own times plus what other work added, and the expected ratios are
/// worked out by hand from the own times.
/// </summary>
public class WinogradRaceTests
{
    // ONNX Runtime's convolution 0.53 ms and its layout's reorders 0.07 ms in a single-node
    // session; the kernel 0.50 ms with F(2×2) and 0.36 ms with F(4×4) (Zen 5's 256-channel shape).
    private const double Convolution = 0.53, Reorders = 0.07, Kernel2 = 0.50, Kernel4 = 0.36;

    // What other work adds to a round that did not share the cores (ms), at most.
    private const double Jitter = 0.02;

    [Fact]
    public void Rounds_that_shared_the_cores_do_not_decide_the_race()
    {
        var random = new Random(7);
        double[] Rounds(double own, int slowed) => [.. Enumerable.Range(0, 11).Select(r => own + (r < slowed ? 0.4 + random.NextDouble() : Jitter * random.NextDouble()))];
        // As a start of the service measured it: most of ONNX Runtime's single runs slowed, its reorders' not.
        var (alone, reorders, tile2) = (Rounds(Convolution + Reorders, slowed: 8), Rounds(Reorders, slowed: 2), Rounds(Kernel2, slowed: 3));
        var outcome = WinogradRace.FromRounds(alone, reorders, tile2, Rounds(Kernel4, slowed: 3));

        // Each side's fastest round is its own time plus at most Jitter, so the reorders are read
        // within Jitter of their own, and the convolution (alone − reorders) within Jitter either way.
        var (forward2, backward2, backward4) = Ratios(outcome);
        Assert.InRange(forward2, (Kernel2 + Reorders) / (Convolution + Jitter), (Kernel2 + Reorders + 2 * Jitter) / (Convolution - Jitter));
        Assert.InRange(backward2, Kernel2 / (Convolution + Jitter), (Kernel2 + Jitter) / (Convolution - Jitter));
        Assert.InRange(backward4, Kernel4 / (Convolution + Jitter), (Kernel4 + Jitter) / (Convolution - Jitter));
        // A backward's F(4×4) wins, a forward's F(2×2), which pays the reorders, loses, and a backward's F(2×2) ties (0.94).
        Assert.True(backward4 <= WinogradRace.Margin && forward2 > WinogradRace.Margin && backward2 > WinogradRace.Margin, $"{outcome}");

        // The same rounds read by their medians: ONNX Runtime's convolution would seem to cost twice its
        // time or more, and the forward's F(2×2), which loses, would win.
        static double Median(double[] values) => values.Order().ElementAt(values.Length / 2);
        Assert.True((Median(tile2) + Median(reorders)) / (Median(alone) - Median(reorders)) <= WinogradRace.Margin);
    }

    [Fact]
    public void A_slow_minute_for_onnx_runtimes_side_moves_its_ratios_by_its_own_share()
    {
        // Every round of ONNX Runtime's single convolution a quarter slower (the host's minute), the
        // rest quiet. Read as the difference of two convolutions' time and one's, as the race did
        // before the fifty-fourth pass, the convolution came out at 0.38 ms for 0.53 and every ratio
        // 1.4 times its own; read as the single run less its reorders, they move by under a quarter.
        var slowed = 1.25 * (Convolution + Reorders);
        var outcome = WinogradRace.FromRounds(Same(slowed), Same(Reorders), Same(Kernel2), Same(Kernel4));
        Assert.Equal(slowed - Reorders, outcome.Convolution, 12);
        var (forward2, backward2, backward4) = Ratios(outcome);
        Assert.InRange(forward2 / ((Kernel2 + Reorders) / Convolution), 0.75, 1);
        Assert.InRange(backward2 / (Kernel2 / Convolution), 0.75, 1);
        Assert.InRange(backward4 / (Kernel4 / Convolution), 0.75, 1);
        var byDifference = 2 * (Convolution + Reorders) - slowed - Reorders; // (2·C + R) − 1.25·(C + R), the old reading
        Assert.InRange(Convolution / byDifference, 1.35, 1.45);
    }

    [Fact]
    public void Quiet_rounds_give_the_ratios_of_the_times_themselves()
    {
        var outcome = WinogradRace.FromRounds(Same(Convolution + Reorders), Same(Reorders), Same(Kernel2), Same(Kernel4));
        var (forward2, backward2, backward4) = Ratios(outcome);
        Assert.Equal((Kernel2 + Reorders) / Convolution, forward2, 12);
        Assert.Equal(Kernel2 / Convolution, backward2, 12);
        Assert.Equal(Kernel4 / Convolution, backward4, 12);
    }

    [Fact]
    public void A_side_that_was_not_raced_never_wins()
    {
        var outcome = WinogradRace.FromRounds(Same(Convolution + Reorders), Same(Reorders), Same(Kernel2), Same(double.PositiveInfinity));
        Assert.Equal(double.PositiveInfinity, outcome.Ratio(WinogradConvolutions.LargeTile, forward: false));
        Assert.Equal(Kernel2 / Convolution, outcome.Ratio(WinogradConvolutions.SmallTile, forward: false), 12);
    }

    /// <summary>Eleven rounds of one time.</summary>
    private static double[] Same(double own) => [.. Enumerable.Repeat(own, 11)];

    private static (double Forward2, double Backward2, double Backward4) Ratios(WinogradRace.Outcome outcome) => (
        outcome.Ratio(WinogradConvolutions.SmallTile, forward: true),
        outcome.Ratio(WinogradConvolutions.SmallTile, forward: false),
        outcome.Ratio(WinogradConvolutions.LargeTile, forward: false));
}
