using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// One explanation in progress: the request, the input, the resolved target, and the gradients
/// every method builds on, on the model's <see cref="IGradientEngine"/>. The target is resolved
/// from the first forward pass made on the input itself (the rectifier rules change backward
/// passes only), so a single-pass method costs one forward and one backward. Lives inside the
/// request's dispose scope.
/// </summary>
/// <param name="input">The sample, with its batch dimension of 1.</param>
/// <param name="channelsLast">The model's layout is NHWC (else NCHW, or not an image).</param>
public sealed class ExplainContext(ModelExplainer model, ExplainRequest request, Tensor input, bool channelsLast,
    IReadOnlyList<string>? labels, CancellationToken cancellationToken = default)
{
    private int? _target;

    public ModelExplainer Model { get; } = model;

    public ExplainRequest Request { get; } = request;

    /// <summary>Stops the work between passes (client gone, or the request's time limit).</summary>
    public CancellationToken CancellationToken { get; } = cancellationToken;

    /// <summary>The sample, with its batch dimension of 1.</summary>
    public Tensor Input { get; } = input;

    public bool ChannelsLast { get; } = channelsLast;

    /// <summary>(height, width) of the model input, for maps drawn at its size.</summary>
    public (long Height, long Width) InputSize { get; } =
        channelsLast ? (input.shape[1], input.shape[2]) : (input.shape[^2], input.shape[^1]);

    public int Target => _target ?? throw new InvalidOperationException("The target is resolved by the first forward pass.");
    public float Score { get; private set; }
    public float[] Outputs { get; private set; } = [];

    /// <summary>Most samples per engine pass (1 for fixed-batch models); lowered to 1 if the graph refuses a batch.</summary>
    public int MaxBatch { get; private set; } = Math.Max(1, model.MaxBatch);

    /// <summary>The samples of <paramref name="inputs"/> one by one, each [1, ...] (the input itself when it is the only one).</summary>
    public static IEnumerable<Tensor> Samples(Tensor inputs) =>
        inputs.shape[0] == 1 ? [inputs] : Enumerable.Range(0, (int)inputs.shape[0]).Select(i => inputs.narrow(0, i, 1));

    /// <summary>
    /// ∂score[target]/∂input for every sample of <paramref name="inputs"/> ([n, ...]), under the
    /// rectifier rule. The input itself takes one pass that also resolves the target. Other
    /// samples are independent, so one backward of the summed scores gives them all, a batch at
    /// a time (<see cref="InBatches"/>).
    /// </summary>
    public Tensor Gradients(Tensor inputs, RectifierRule rule)
    {
        if (ReferenceEquals(inputs, Input))
            return Model.Engine.InputGradients(Input, InputTarget, rule, CancellationToken);
        var parts = new List<Tensor>();
        InBatches(inputs.shape[0], (start, size) =>
        {
            // A pass's activations die with the pass, so the next batch reuses their memory instead
            // of every batch's activations living until the request ends.
            using var pass = NewDisposeScope();
            parts.Add(BatchGradients(inputs.narrow(0, start, size), rule).MoveToOuterDisposeScope());
        });
        return parts.Count == 1 ? parts[0] : cat(parts, 0);
    }

    /// <summary>
    /// The mean of ∂score[target]/∂input ([1, ...]) over <paramref name="count"/> inputs that
    /// <paramref name="batch"/> makes a batch at a time (from the first one's index and the batch
    /// size, [size, ...]): a request holds one batch's inputs and gradients however many it asks
    /// for (1,024 integrated-gradients steps of a 1024² input would be 12 GB of path at once).
    /// </summary>
    public Tensor MeanGradient(long count, Func<long, long, Tensor> batch, RectifierRule rule) => GradientSum(count, batch, rule).Value;

    /// <summary>The sum of ∂score[target]/∂input ([1, ...]) over the samples of <paramref name="inputs"/> ([n, ...]), a batch at a time.</summary>
    public Tensor SummedGradient(Tensor inputs, RectifierRule rule) =>
        GradientSum(inputs.shape[0], (start, size) => inputs.narrow(0, start, size), rule).Sum;

    /// <summary>
    /// The gradients of <paramref name="count"/> samples summed a batch at a time, each batch's
    /// summed by the engine (<see cref="IGradientEngine.SummedInputGradients"/>).
    /// </summary>
    private SampleMean GradientSum(long count, Func<long, long, Tensor> batch, RectifierRule rule)
    {
        var mean = new SampleMean();
        InBatches(count, (start, size) =>
        {
            using var pass = NewDisposeScope();
            mean.AddSum(Model.Engine.SummedInputGradients(batch(start, size), TargetChoice.Fixed(Target), rule, CancellationToken), size);
        });
        return mean;
    }

    /// <summary>A layer's value and ∂score[target]/∂layer for one sample ([1, ...]) (Grad-CAM).</summary>
    public (Tensor Activation, Tensor Gradient) LayerGradient(Tensor sample, string layer)
    {
        if (!ReferenceEquals(sample, Input)) ResolveTarget();
        return Model.Engine.LayerGradient(sample, layer, InputTarget, CancellationToken);
    }

    /// <summary>Resolves the target without gradients, for methods that then perturb the input.</summary>
    public void ResolveTarget()
    {
        if (_target is null) Resolve(Model.Engine.Forward(Input, CancellationToken));
    }

    /// <summary>The target of a pass on the input: resolved by the first, kept by the others.</summary>
    private TargetChoice InputTarget => new(_target ?? Targets.Expected(Request.Target, labels), Resolve);

    /// <summary>
    /// The target for a forward: resolved from the first forward of the input itself (taking its
    /// score and outputs too), then kept for every later pass.
    /// </summary>
    private long Resolve(ForwardResult forward)
    {
        if (_target is { } resolved) return resolved;
        var scores = forward.Scores.detach().reshape(1, -1);
        _target = Targets.Resolve(Request.Target, labels, scores);
        Score = scores[0, _target.Value].item<float>();
        Outputs = Tensors.TensorCopy.Floats(forward.Outputs.detach());
        return _target.Value;
    }

    /// <summary>
    /// Runs <paramref name="pass"/> on (first index, size) for every batch of <paramref name="count"/>
    /// samples, <see cref="MaxBatch"/> at a time (<see cref="BatchSize"/>), once the target is resolved; a graph that cannot
    /// take a batch (a Reshape with the batch size baked in) falls back to one sample at a time.
    /// </summary>
    private void InBatches(long count, Action<long, long> pass)
    {
        ResolveTarget();
        try
        {
            for (long start = 0; start < count;)
            {
                var size = BatchSize(count - start);
                try
                {
                    pass(start, size);
                    start += size;
                }
                catch (Exception e) when (size > 1 && e is System.Runtime.InteropServices.ExternalException or ArgumentException
                                              or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
                {
                    MaxBatch = 1;
                }
            }
        }
        finally
        {
            // Batched passes leave hundreds of freed megabytes in the native heap: kept while such
            // requests follow each other (their pages are reused), handed back once they pause.
            NativeHeap.TrimWhenBatchesPause();
        }
    }

    /// <summary>The next batch's size, with <paramref name="left"/> samples to go.</summary>
    private long BatchSize(long left) =>
        left >= MaxBatch ? MaxBatch : Model.PowerOfTwoBatches ? 1L << System.Numerics.BitOperations.Log2((ulong)left) : left;

    private Tensor BatchGradients(Tensor batch, RectifierRule rule) =>
        Model.Engine.InputGradients(batch, TargetChoice.Fixed(Target), rule, CancellationToken);
}
