using System.Collections.Concurrent;
using System.Diagnostics;
using Triton = SaliencyService.Api.OpenInference.Grpc;

namespace SaliencyService.Api.Inference;

/// <summary>The time one run of a model spent assembling its batch's inputs, in ONNX Runtime, and splitting its outputs.</summary>
public readonly record struct ComputeTimes(TimeSpan Input, TimeSpan Infer, TimeSpan Output)
{
    public TimeSpan Total => Input + Infer + Output;
}

/// <summary>
/// What one model version has served, as Triton's statistics extension counts it
/// (<c>GET /v2/models/{name}/stats</c>): predictions (REST and gRPC, <c>/v1</c> and <c>/v2</c>) that
/// succeeded or failed with their time in the batcher, their wait for a batch, the compute time of
/// the batch each ran in; and the runs themselves, by batch size. Kept per version, so a replace
/// starts from zero, as a reload does in Triton. Explanations are not counted.
/// </summary>
public sealed class ModelStatistics
{
    private readonly Counter _success = new(), _fail = new(), _queue = new(), _input = new(), _infer = new(), _output = new();
    private readonly ConcurrentDictionary<long, (Counter Input, Counter Infer, Counter Output)> _batches = new();
    private long _inferences, _executions, _lastInferenceMs;

    /// <summary>One run of ONNX Runtime over <paramref name="samples"/> samples.</summary>
    public void RecordExecution(long samples, ComputeTimes compute)
    {
        Interlocked.Increment(ref _executions);
        Interlocked.Add(ref _inferences, samples);
        Interlocked.Exchange(ref _lastInferenceMs, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var batch = _batches.GetOrAdd(samples, _ => (new Counter(), new Counter(), new Counter()));
        batch.Input.Add(compute.Input);
        batch.Infer.Add(compute.Infer);
        batch.Output.Add(compute.Output);
    }

    /// <summary>One request: its whole time here, its wait for a batch, and its batch's compute time.</summary>
    public void RecordRequest(bool succeeded, TimeSpan total, TimeSpan queued, ComputeTimes compute)
    {
        (succeeded ? _success : _fail).Add(total);
        if (!succeeded) return;
        _queue.Add(queued);
        _input.Add(compute.Input);
        _infer.Add(compute.Infer);
        _output.Add(compute.Output);
    }

    /// <summary>Runs <paramref name="run"/> alone (no batch to join) and counts it as one request and one run.</summary>
    public T RecordAlone<T>(long samples, Func<T> run)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = run();
            var compute = new ComputeTimes(TimeSpan.Zero, Stopwatch.GetElapsedTime(started), TimeSpan.Zero);
            RecordExecution(samples, compute);
            RecordRequest(true, compute.Infer, TimeSpan.Zero, compute);
            return result;
        }
        catch
        {
            RecordRequest(false, Stopwatch.GetElapsedTime(started), TimeSpan.Zero, default);
            throw;
        }
    }

    /// <summary>Triton's <c>ModelStatistics</c> message for this version (gRPC, and REST as its JSON).</summary>
    public Triton.ModelStatistics ToTriton(string name, string version) => new()
    {
        Name = name,
        Version = version,
        LastInference = (ulong)Interlocked.Read(ref _lastInferenceMs),
        InferenceCount = (ulong)Interlocked.Read(ref _inferences),
        ExecutionCount = (ulong)Interlocked.Read(ref _executions),
        InferenceStats = new Triton.InferStatistics
        {
            Success = _success.ToTriton(),
            Fail = _fail.ToTriton(),
            Queue = _queue.ToTriton(),
            ComputeInput = _input.ToTriton(),
            ComputeInfer = _infer.ToTriton(),
            ComputeOutput = _output.ToTriton(),
            CacheHit = new Triton.StatisticDuration(), // predictions are not cached (the explanation cache is not Triton's response cache)
            CacheMiss = new Triton.StatisticDuration(),
        },
        BatchStats =
        {
            _batches.OrderBy(b => b.Key).Select(b => new Triton.InferBatchStatistics
            {
                BatchSize = (ulong)b.Key,
                ComputeInput = b.Value.Input.ToTriton(),
                ComputeInfer = b.Value.Infer.ToTriton(),
                ComputeOutput = b.Value.Output.ToTriton(),
            }),
        },
    };

    /// <summary>A count and the nanoseconds they took (Triton's <c>StatisticDuration</c>).</summary>
    private sealed class Counter
    {
        private long _count, _ticks;

        public void Add(TimeSpan duration)
        {
            Interlocked.Increment(ref _count);
            Interlocked.Add(ref _ticks, duration.Ticks);
        }

        public Triton.StatisticDuration ToTriton() => new() { Count = (ulong)Interlocked.Read(ref _count), Ns = (ulong)Interlocked.Read(ref _ticks) * 100 };
    }
}
