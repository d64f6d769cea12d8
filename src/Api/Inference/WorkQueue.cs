using System.Diagnostics;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Observability;
using SaliencyService.Explain;

namespace SaliencyService.Api.Inference;

/// <summary>
/// Backpressure for CPU-bound work: at most <c>maxConcurrent</c> items run; up to <c>maxQueued</c>
/// more wait, each at most <c>timeout</c>; anything beyond is refused at once with 503 and
/// Retry-After, so overload never piles up threads or memory.
/// </summary>
public sealed class WorkQueue(string name, int maxConcurrent, int maxQueued, TimeSpan timeout) : IDisposable
{
    public WorkQueue(string name, IQueueOptions options)
        : this(name, options.MaxConcurrent, options.MaxQueued, TimeSpan.FromSeconds(options.QueueTimeoutSeconds))
    {
    }

    private readonly SemaphoreSlim _slots = new(Math.Max(1, maxConcurrent));
    private readonly int _capacity = Math.Max(1, maxConcurrent) + Math.Max(0, maxQueued);
    private int _admitted;

    public string Name { get; } = name;

    /// <summary>Requests running or waiting now.</summary>
    public int Admitted => Volatile.Read(ref _admitted);

    /// <summary>Admits, waits for a slot and runs the work; the request's Server-Timing gets the wait (queue) and the work (the queue's name).</summary>
    public async Task<T> RunAsync<T>(Func<CancellationToken, T> work, CancellationToken cancellationToken)
    {
        using var admission = Admit();
        var queued = Stopwatch.GetTimestamp();
        return await RunInSlotAsync(token =>
        {
            ServerTiming.Add("queue", queued);
            var started = Stopwatch.GetTimestamp();
            var result = work(token);
            ServerTiming.Add(Name, started);
            return result;
        }, cancellationToken);
    }

    /// <summary>
    /// Counts one request against the queue's capacity until disposed; 503 + Retry-After at once
    /// when the queue is full.
    /// </summary>
    public IDisposable Admit()
    {
        if (Interlocked.Increment(ref _admitted) > _capacity)
        {
            Interlocked.Decrement(ref _admitted);
            throw ProblemException.Busy($"The {Name} queue is full; retry shortly.", retryAfterSeconds: 2);
        }
        return new Admission(this);
    }

    /// <summary>Waits for a free slot (at most the queue timeout), then runs the work on the thread pool.</summary>
    public async Task<T> RunInSlotAsync<T>(Func<CancellationToken, T> work, CancellationToken cancellationToken)
    {
        if (!await _slots.WaitAsync(timeout, cancellationToken))
            throw ProblemException.Busy($"No {Name} slot freed up within {timeout.TotalSeconds:0} s; retry shortly.", retryAfterSeconds: 5);
        try
        {
            // The work is CPU-bound and synchronous: keep it off the request thread.
            return await Task.Run(() => work(cancellationToken), cancellationToken);
        }
        finally
        {
            _slots.Release();
        }
    }

    private sealed class Admission(WorkQueue queue) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) Interlocked.Decrement(ref queue._admitted);
        }
    }

    public void Dispose() => _slots.Dispose();
}

/// <summary>The service's two queues: predictions (ONNX Runtime) and explanations (libtorch).</summary>
public sealed class InferenceQueues(WorkQueue predict, WorkQueue explain) : IDisposable
{
    public WorkQueue Predict { get; } = predict;
    public WorkQueue Explain { get; } = explain;

    public void Dispose()
    {
        Predict.Dispose();
        Explain.Dispose();
    }
}
