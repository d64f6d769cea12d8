using System.Diagnostics;
using System.Text.Json;

namespace SaliencyService.Bench;

/// <summary>One JSON object per line on stdout, for bench/summarize.py.</summary>
public static class Report
{
    public static void Line(params (string Key, object Value)[] fields) =>
        Console.WriteLine(JsonSerializer.Serialize(fields.ToDictionary(f => f.Key, f => f.Value is double d ? Math.Round(d, 3) : f.Value)));

    /// <summary>Runs <paramref name="pass"/> <paramref name="warmUp"/> times to warm up, then <paramref name="repeats"/> times: the sorted milliseconds.</summary>
    public static double[] Time(int repeats, Action pass, int warmUp = 1)
    {
        for (var i = 0; i < warmUp; i++) pass();
        return Enumerable.Range(0, repeats).Select(_ => Milliseconds(pass)).Order().ToArray();
    }

    /// <summary>How long one call of <paramref name="pass"/> takes.</summary>
    public static double Milliseconds(Action pass)
    {
        var start = Stopwatch.GetTimestamp();
        pass();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>
    /// Each of <paramref name="sides"/> timed once a round for <paramref name="repeats"/> rounds, in
    /// turn one way then the other (three untimed rounds first), <paramref name="before"/> run untimed
    /// before each: [round][side] milliseconds.
    /// </summary>
    public static double[][] InTurn(IReadOnlyList<Action> sides, int repeats, Action before)
    {
        for (var i = 0; i < 3; i++)
            foreach (var side in sides)
            {
                before();
                side();
            }
        return Enumerable.Range(0, repeats).Select(round =>
        {
            var times = new double[sides.Count];
            foreach (var i in round % 2 == 0 ? Enumerable.Range(0, sides.Count) : Enumerable.Range(0, sides.Count).Reverse())
            {
                before();
                times[i] = Milliseconds(sides[i]);
            }
            return times;
        }).ToArray();
    }

    /// <summary>The median over rounds of <paramref name="of"/> a round's times (<see cref="InTurn"/>).</summary>
    public static double P50(double[][] rounds, Func<double[], double> of) => Percentile([.. rounds.Select(of).Order()], 0.5);

    public static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
