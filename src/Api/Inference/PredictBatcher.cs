using System.Runtime.CompilerServices;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Explain.Tensors;

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

    public PredictBatcher(ServedModel model, WorkQueue queue, PredictOptions options, ServiceMetrics metrics)
    {
        _model = model;
        _queue = queue;
        _options = options;
        _metrics = metrics;
    }

    /// <summary>The scored output of each sample of <paramref name="input"/> (batch dimension first).</summary>
    public async Task<float[][]> ScoreAsync(FloatTensor input, CancellationToken cancellationToken)
    {
        using var admission = _queue.Admit();
        var pending = new Pending(input, cancellationToken);
        bool startDrain;
        lock (_lock)
        {
            pending.Node = _pending.AddLast(pending);
            startDrain = !_draining;
            _draining = true;
        }
        if (startDrain) _ = Task.Run(DrainAsync, CancellationToken.None);
        await using var withdraw = cancellationToken.Register(() => Withdraw(pending));
        return await pending.Result.Task;
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
        try
        {
            var input = batch.Count == 1 ? batch[0].Input : Concatenate(batch.Select(p => p.Input).ToList());
            var scores = _metrics.Measure("onnxruntime", _model.Name, () => Predictor.Scores(_model, input, cancel.Token));
            _metrics.RecordBatch((int)input.Shape[0]);
            var offset = 0;
            foreach (var pending in batch)
            {
                var count = (int)pending.Input.Shape[0];
                pending.Result.TrySetResult(scores[offset..(offset + count)]);
                offset += count;
            }
        }
        catch (Exception e)
        {
            foreach (var pending in batch) pending.Result.TrySetException(e);
        }
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
                var count = (int)pending.Input.Shape[0];
                var fits = batch.Count == 0 || (samples + count <= _options.MaxBatchSize && SameSampleShape(batch[0].Input, pending.Input));
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

    private static FloatTensor Concatenate(List<FloatTensor> inputs)
    {
        var data = new float[inputs.Sum(t => t.Data.Length)];
        var offset = 0;
        foreach (var input in inputs)
        {
            input.Data.CopyTo(data, offset);
            offset += input.Data.Length;
        }
        return new FloatTensor(data, [inputs.Sum(t => t.Shape[0]), .. inputs[0].Shape[1..]]);
    }

    private static bool SameSampleShape(FloatTensor a, FloatTensor b) => a.Shape.AsSpan(1).SequenceEqual(b.Shape.AsSpan(1));

    private sealed class Pending(FloatTensor input, CancellationToken cancellationToken)
    {
        public FloatTensor Input { get; } = input;
        public CancellationToken CancellationToken { get; } = cancellationToken;
        public TaskCompletionSource<float[][]> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public LinkedListNode<Pending>? Node { get; set; }
    }
}

/// <summary>One <see cref="PredictBatcher"/> per model version that can batch, living as long as that version.</summary>
public sealed class PredictBatchers(InferenceQueues queues, Microsoft.Extensions.Options.IOptions<SaliencyOptions> options, ServiceMetrics metrics)
{
    private readonly ConditionalWeakTable<ServedModel, PredictBatcher> _batchers = new();
    private readonly PredictOptions _options = options.Value.Predict;

    /// <summary>The model's batcher; null when batching is off or the model's batch dimension is fixed.</summary>
    public PredictBatcher? For(ServedModel model)
    {
        if (_options.MaxBatchSize <= 1 || model.Descriptor.Inputs.Count != 1 || model.Descriptor.Inputs[0].Shape is not [-1, ..]) return null;
        return _batchers.GetValue(model, m => new PredictBatcher(m, queues.Predict, _options, metrics));
    }
}
