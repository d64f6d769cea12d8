namespace SaliencyService.Api.Observability;

/// <summary>A lock-free Prometheus histogram of durations in seconds.</summary>
public sealed class Histogram
{
    public static readonly double[] Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly long[] _counts = new long[Buckets.Length + 1]; // the last one is +Inf
    private long _sumMicroseconds;

    public void Observe(TimeSpan duration)
    {
        var seconds = duration.TotalSeconds;
        var bucket = Array.FindIndex(Buckets, b => seconds <= b);
        Interlocked.Increment(ref _counts[bucket < 0 ? Buckets.Length : bucket]);
        Interlocked.Add(ref _sumMicroseconds, (long)(duration.Ticks / 10));
    }

    /// <summary>Cumulative counts per bucket (with +Inf last), sum in seconds, and count.</summary>
    public (long[] Cumulative, double Sum, long Count) Snapshot()
    {
        var cumulative = new long[_counts.Length];
        long running = 0;
        for (var i = 0; i < _counts.Length; i++) cumulative[i] = running += Interlocked.Read(ref _counts[i]);
        return (cumulative, Interlocked.Read(ref _sumMicroseconds) / 1e6, running);
    }
}
