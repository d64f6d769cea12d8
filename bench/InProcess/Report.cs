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

    public static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
