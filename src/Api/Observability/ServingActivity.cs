using System.Diagnostics;

namespace SaliencyService.Api.Observability;

/// <summary>
/// Whether the service is serving: how many work requests (POSTs: predictions, maps, imports, over
/// REST or gRPC) are in flight, and when the last one ended. Work the service does for itself that
/// takes cores waits for a pause in serving: the next import's spare child, whose warm-up takes ~3 s
/// of a core, slowed the predictions that followed an import on two cores for ~7 s (resnet18: 16–39 ms
/// in groups of 25 against 11 ms) even at its low priority.
/// </summary>
public sealed class ServingActivity
{
    private int _inFlight;
    private long _lastEnded = Stopwatch.GetTimestamp();

    /// <summary>Runs the request, counted while it runs where it is work.</summary>
    public async Task TrackAsync(HttpContext context, Func<Task> next)
    {
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            await next();
            return;
        }
        Interlocked.Increment(ref _inFlight);
        try
        {
            await next();
        }
        finally
        {
            // Before the count drops: whoever then sees none in flight reads this end.
            Volatile.Write(ref _lastEnded, Stopwatch.GetTimestamp());
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>
    /// Completes once no work request has been in flight for <paramref name="quiet"/>, or at the
    /// latest after <paramref name="atMost"/>: under unbroken load the work waits that long, not forever.
    /// </summary>
    public async Task PauseAsync(TimeSpan quiet, TimeSpan atMost, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            var idle = Volatile.Read(ref _inFlight) > 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(Volatile.Read(ref _lastEnded));
            var left = atMost - Stopwatch.GetElapsedTime(started);
            if (idle >= quiet || left <= TimeSpan.Zero) return;
            await Task.Delay(quiet - idle < left ? quiet - idle : left, cancellationToken);
        }
    }
}
