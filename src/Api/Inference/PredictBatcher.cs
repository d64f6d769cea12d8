using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Inference;

/// <summary>
/// Dynamic batching of predictions for one model version, like Triton's dynamic batcher:
/// requests that wait while the model's previous batch runs go into ONNX Runtime together as one
/// batch (up to <see cref="PredictOptions.MaxBatchSize"/> samples). An idle model runs a lone
/// request at once, so batching adds no latency at low load; under load one run per batch
/// replaces many runs that would fight over the same cores.
/// </summary>
public sealed class PredictBatcher
{
    private readonly ServedModel _model;
    private readonly WorkQueue _queue;
    private readonly PredictOptions _options;
    private readonly ServiceMetrics _metrics;
    private readonly Lock _lock = new();
    private readonly LinkedList<Pending> _pending = new();
    private bool _draining;

    // Each input's concatenation, kept for the next batch (batches run one at a time). A batch of
    // a few 224² images is over the GC's 4 MB young-object cap, and a fresh large array is memory
    // the kernel maps in anew: 60-80 page faults a request at concurrency 16, 11 us each on a
    // Firecracker VM. Grows to the largest batch seen and lives as long as the model version.
    private Array?[] _batchInputs = [];

    public PredictBatcher(ServedModel model, WorkQueue queue, PredictOptions options, ServiceMetrics metrics)
    {
        _model = model;
        _queue = queue;
        _options = options;
        _metrics = metrics;
    }

    /// <summary>The outputs <paramref name="work"/> asks for, for its own samples only.</summary>
    public async Task<NamedTensor[]> RunAsync(InferWork work, CancellationToken cancellationToken)
    {
        using var admission = _queue.Admit();
        var pending = new Pending(work, cancellationToken);
        bool startDrain;
        lock (_lock)
        {
            pending.Node = _pending.AddLast(pending);
            startDrain = !_draining;
            _draining = true;
        }
        if (startDrain) _ = Task.Run(DrainAsync, CancellationToken.None);
        await using var withdraw = cancellationToken.Register(() => Withdraw(pending));
        NamedTensor[] outputs;
        try
        {
            outputs = await pending.Result.Task;
        }
        catch
        {
            _model.Statistics.RecordRequest(false, Stopwatch.GetElapsedTime(pending.Enqueued), pending.Queued, default);
            throw;
        }
        _model.Statistics.RecordRequest(true, Stopwatch.GetElapsedTime(pending.Enqueued), pending.Queued, pending.Compute);
        // Back on the request's own flow (the batch ran on whichever request's drain took it).
        ServerTiming.Current?.Record("queue", pending.Queued);
        ServerTiming.Current?.Record("predict", pending.Compute.Total, $"batch of {pending.BatchSamples}");
        return outputs;
    }

    /// <summary>One batch at a time for this model, until nothing waits.</summary>
    private async Task DrainAsync()
    {
        while (true)
        {
            if (_options.MaxQueueDelayMilliseconds > 0 && Waiting() < _options.MaxBatchSize)
                await Task.Delay(_options.MaxQueueDelayMilliseconds);
            List<Pending>? batch = null;
            try
            {
                // The batch is taken once a slot is free, so it holds everyone who queued meanwhile.
                await _queue.RunInSlotAsync(_ =>
                {
                    batch = Take();
                    if (batch.Count > 0) Run(batch);
                    return 0;
                }, CancellationToken.None);
            }
            catch (Exception e)
            {
                // No slot within the queue timeout: whoever is waiting gets the 503.
                foreach (var pending in batch ?? TakeAll()) pending.Result.TrySetException(e);
            }
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _draining = false;
                    return;
                }
            }
        }
    }

    private void Run(List<Pending> batch)
    {
        using var cancel = new AllCancelled(batch);
        var started = Stopwatch.GetTimestamp();
        foreach (var pending in batch) pending.Queued = Stopwatch.GetElapsedTime(pending.Enqueued, started);
        try
        {
            var work = batch[0].Work;
            var inputs = work.Inputs.Select((_, i) => Concatenate(batch, i)).ToArray();
            var total = inputs[0].Shape[0];
            var assembled = Stopwatch.GetTimestamp();
            var outputs = _metrics.Measure("onnxruntime", _model.Name, () => _model.Onnx.Run(inputs, work.Outputs, cancel.Token));
            var inferred = Stopwatch.GetTimestamp();
            _metrics.RecordBatch((int)total);
            if (batch.Count > 1 && outputs.Any(o => o.Shape is [] || o.Shape[0] != total))
            {
                // Outputs that are not per sample cannot be split: each request runs alone.
                foreach (var pending in batch) Run([pending]);
                return;
            }
            long offset = 0;
            var results = new NamedTensor[batch.Count][];
            for (var i = 0; i < batch.Count; i++)
            {
                var count = batch[i].Work.Samples;
                results[i] = outputs.Select(o => o.Slice(offset, count)).ToArray();
                offset += count;
            }
            var compute = new ComputeTimes(Stopwatch.GetElapsedTime(started, assembled), Stopwatch.GetElapsedTime(assembled, inferred), Stopwatch.GetElapsedTime(inferred));
            _model.Statistics.RecordExecution(total, compute);
            for (var i = 0; i < batch.Count; i++)
            {
                (batch[i].BatchSamples, batch[i].Compute) = (total, compute);
                batch[i].Result.TrySetResult(results[i]);
            }
        }
        catch (OnnxRuntimeException) when (batch.Count > 1)
        {
            // One request's input the model cannot take fails the whole batch: each runs alone, so only it fails.
            foreach (var pending in batch) Run([pending]);
        }
        catch (Exception e)
        {
            foreach (var pending in batch) pending.Result.TrySetException(e);
        }
    }

    /// <summary>Input <paramref name="index"/> of every request in the batch, in a kept array.</summary>
    private NamedTensor Concatenate(List<Pending> batch, int index)
    {
        if (batch.Count == 1) return batch[0].Work.Inputs[index];
        if (_batchInputs.Length <= index) Array.Resize(ref _batchInputs, index + 1);
        var input = NamedTensor.Concatenate(batch.Select(p => p.Work.Inputs[index]).ToList(), _batchInputs[index]);
        _batchInputs[index] = input.Data;
        return input;
    }

    /// <summary>
    /// The waiting requests, oldest first, that fit one batch: same sample shape as the first, at
    /// most MaxBatchSize samples in all (a larger request runs alone).
    /// </summary>
    private List<Pending> Take()
    {
        var batch = new List<Pending>();
        var samples = 0;
        lock (_lock)
        {
            for (var node = _pending.First; node is not null;)
            {
                var next = node.Next;
                var pending = node.Value;
                var count = (int)pending.Work.Samples;
                var fits = batch.Count == 0 || (samples + count <= _options.MaxBatchSize && batch[0].Work.BatchesWith(pending.Work));
                if (fits)
                {
                    _pending.Remove(node);
                    pending.Node = null;
                    batch.Add(pending);
                    samples += count;
                }
                if (samples >= _options.MaxBatchSize) break;
                node = next;
            }
        }
        return batch;
    }

    private List<Pending> TakeAll()
    {
        lock (_lock)
        {
            var all = _pending.ToList();
            _pending.Clear();
            all.ForEach(p => p.Node = null);
            return all;
        }
    }

    private int Waiting()
    {
        lock (_lock) return _pending.Count;
    }

    /// <summary>A request cancelled while it waits leaves the line; one already running just stops waiting.</summary>
    private void Withdraw(Pending pending)
    {
        lock (_lock)
        {
            if (pending.Node is not null) _pending.Remove(pending.Node);
            pending.Node = null;
        }
        pending.Result.TrySetCanceled(pending.CancellationToken);
    }

    /// <summary>A token that stops the batch's run only when every request in it has gone.</summary>
    private sealed class AllCancelled : IDisposable
    {
        private readonly CancellationTokenSource _source = new();
        private readonly List<CancellationTokenRegistration> _registrations = [];
        private int _remaining;

        public AllCancelled(List<Pending> batch)
        {
            _remaining = batch.Count;
            foreach (var pending in batch)
                _registrations.Add(pending.CancellationToken.Register(() =>
                {
                    if (Interlocked.Decrement(ref _remaining) == 0) _source.Cancel();
                }));
        }

        public CancellationToken Token => _source.Token;

        public void Dispose()
        {
            _registrations.ForEach(r => r.Dispose());
            _source.Dispose();
        }
    }

    private sealed class Pending(InferWork work, CancellationToken cancellationToken)
    {
        public InferWork Work { get; } = work;
        public CancellationToken CancellationToken { get; } = cancellationToken;
        public TaskCompletionSource<NamedTensor[]> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Pending>? Node { get; set; }

        // Where its time went (Server-Timing): set by the batch's run, read by the request after it.
        public long Enqueued { get; } = Stopwatch.GetTimestamp();
        public TimeSpan Queued { get; set; }
        public long BatchSamples { get; set; }
        public ComputeTimes Compute { get; set; }
    }
}

/// <summary>One <see cref="PredictBatcher"/> per model version that can batch, living as long as that version.</summary>
public sealed class PredictBatchers(InferenceQueues queues, Microsoft.Extensions.Options.IOptions<SaliencyOptions> options, ServiceMetrics metrics)
{
    private readonly ConditionalWeakTable<ServedModel, PredictBatcher> _batchers = new();
    private readonly PredictOptions _options = options.Value.Predict;

    /// <summary>The model's batcher; null where it does not batch (<see cref="Batches"/>).</summary>
    public PredictBatcher? For(ServedModel model) =>
        Batches(model) ? _batchers.GetValue(model, m => new PredictBatcher(m, queues.Predict, _options, metrics)) : null;

    /// <summary>
    /// A run that joins no batch (the model does not batch, or its inputs cannot): on the predict
    /// queue, measured as a batch's run is, for Prometheus and for Triton's statistics.
    /// </summary>
    public Task<T> RunAloneAsync<T>(ServedModel model, long samples, Func<CancellationToken, T> run, CancellationToken cancellationToken) =>
        queues.Predict.RunAsync(t => metrics.Measure("onnxruntime", model.Name, () => model.Statistics.RecordAlone(samples, () => run(t))), cancellationToken);

    /// <summary>Whether requests to the model are batched: batching is on and every input's batch dimension is free.</summary>
    public bool Batches(ServedModel model) => _options.MaxBatchSize > 1 && model.Descriptor.Inputs.All(i => i.Shape is [-1, ..]);
}
