using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// One explanation in progress: the input, the resolved target, and the batched gradient
/// computation every method builds on. The target is resolved from the first forward pass a
/// method makes on the input itself (the rectifier rules change backward passes only), so a
/// single-pass method costs one forward and one backward. Lives inside the request's dispose scope.
/// </summary>
public sealed class ExplainContext(ModelExplainer model, Tensor input, string? target, IReadOnlyList<string>? labels, int maxBatch,
    CancellationToken cancellationToken = default)
{
    private int? _target;

    public ModelExplainer Model { get; } = model;

    /// <summary>Stops the work between mirror nodes (client gone, or the request's time limit).</summary>
    public CancellationToken CancellationToken { get; } = cancellationToken;

    /// <summary>The sample, with its batch dimension of 1.</summary>
    public Tensor Input { get; } = input;

    public int Target => _target ?? throw new InvalidOperationException("The target is resolved by the first forward pass.");
    public float Score { get; private set; }
    public float[] Outputs { get; private set; } = [];

    /// <summary>Runs the mirror on the input itself, resolving the target from that pass.</summary>
    public Dictionary<string, Tensor> ForwardInput(Tensor x, RectifierRule rule)
    {
        var values = Model.Mirror.Forward(x, rule, CancellationToken);
        Resolve(values);
        return values;
    }

    /// <summary>
    /// ∂score[target]/∂input for the input itself: one forward, one backward — both on ONNX
    /// Runtime where the model has <see cref="ModelExplainer.Backprop"/>, else libtorch's autograd.
    /// </summary>
    public Tensor InputGradient(RectifierRule rule)
    {
        if (Model.Backprop is { } backprop)
        {
            var recorded = backprop.Forward(Input, cancellationToken: CancellationToken);
            Resolve(recorded);
            return backprop.InputGradient(Input, recorded, Target, rule, cancellationToken: CancellationToken);
        }
        var x = Input.detach().requires_grad_();
        var values = ForwardInput(x, rule);
        values[Model.Mirror.ScoreName].reshape(1, -1)[0, Target].backward();
        return x.grad!.detach();
    }

    /// <summary>
    /// A layer's value and ∂score[target]/∂layer for the input itself (Grad-CAM): on ONNX Runtime
    /// (the model's backward stopped at the layer) where the model's gradients are, else libtorch autograd.
    /// </summary>
    public (Tensor Activation, Tensor Gradient) LayerGradient(string layer)
    {
        using (var lease = Model.LayerBackprop(layer))
        {
            if (lease?.Backprop is { } backprop)
            {
                var recorded = backprop.Forward(Input, cancellationToken: CancellationToken);
                Resolve(recorded);
                return (recorded[layer], backprop.InputGradient(Input, recorded, Target, RectifierRule.Gradient, cancellationToken: CancellationToken));
            }
        }
        using var grad = enable_grad();
        var values = ForwardInput(Input.detach().requires_grad_(), RectifierRule.Gradient);
        var activation = values[layer];
        var score = values[Model.Mirror.ScoreName].reshape(1, -1)[0, Target];
        return (activation.detach(), autograd.grad([score], [activation])[0]);
    }

    /// <summary>Resolves the target without gradients, for methods that then perturb the input.</summary>
    public void ResolveTarget()
    {
        if (_target is not null) return;
        if (Model.Backprop is { } backprop)
        {
            Resolve(backprop.Forward(Input, cancellationToken: CancellationToken));
            return;
        }
        using var noGrad = no_grad();
        ForwardInput(Input, RectifierRule.Gradient);
    }

    /// <summary>Takes the target, its score and the outputs from a forward of the input itself (the first one).</summary>
    private void Resolve(IReadOnlyDictionary<string, Tensor> values)
    {
        if (_target is not null) return;
        var scores = values[Model.Mirror.ScoreName].detach().reshape(1, -1);
        _target = Targets.Resolve(target, labels, scores);
        Score = scores[0, _target.Value].item<float>();
        Outputs = values[Model.Mirror.OutputName].detach().reshape(-1).data<float>().ToArray();
    }

    /// <summary>Most samples run through the mirror at once (1 for fixed-batch models).</summary>
    public int MaxBatch { get; private set; } = Math.Max(1, maxBatch);

    /// <summary>
    /// ∂score[target]/∂input for every sample of <paramref name="inputs"/> ([n, ...]), under the
    /// rectifier rule. Samples are independent, so one backward of the summed scores gives them
    /// all; batches are chunked by <see cref="MaxBatch"/>, and a graph that cannot take a batch
    /// (a Reshape with the batch size baked in) falls back to one sample at a time.
    /// </summary>
    public Tensor Gradients(Tensor inputs, RectifierRule rule)
    {
        try
        {
            return GradientsInBatches(inputs, rule);
        }
        finally
        {
            // Batched passes leave hundreds of freed megabytes in the native heap: kept while such
            // requests follow each other (their pages are reused), handed back once they pause.
            Torch.NativeHeap.TrimWhenIdle(TimeSpan.FromSeconds(5));
        }
    }

    private Tensor GradientsInBatches(Tensor inputs, RectifierRule rule)
    {
        ResolveTarget();
        var count = inputs.shape[0];
        var parts = new List<Tensor>();
        for (long start = 0; start < count;)
        {
            var size = Math.Min(MaxBatch, count - start);
            try
            {
                parts.Add(GradientsOf(inputs.narrow(0, start, size), rule, last: start + size >= count));
                start += size;
            }
            catch (Exception e) when (size > 1 && e is System.Runtime.InteropServices.ExternalException or ArgumentException
                                          or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
            {
                MaxBatch = 1;
            }
        }
        return parts.Count == 1 ? parts[0] : cat(parts, 0);
    }

    /// <param name="last">The request's last pass: ONNX Runtime hands back the working memory of its batches after it.</param>
    private Tensor GradientsOf(Tensor batch, RectifierRule rule, bool last)
    {
        // A pass's activations die with the pass, so the next chunk reuses their memory instead
        // of every chunk's activations living until the request ends.
        using var pass = NewDisposeScope();
        if (Model.Backprop is { } backprop)
        {
            var release = last && batch.shape[0] > 1;
            var recorded = backprop.Forward(batch, release, CancellationToken);
            return backprop.InputGradient(batch, recorded, Target, rule, release, CancellationToken).MoveToOuterDisposeScope();
        }
        return Model.Mirror.InputGradients(batch, Target, rule, CancellationToken).MoveToOuterDisposeScope();
    }

    /// <summary>Wraps a map tensor of the sample's shape (or [H, W]) as the method's result.</summary>
    public AttributionMap Result(AttributionMethod method, Tensor map, IReadOnlyDictionary<string, object>? parameters = null) =>
        new(method, map.contiguous().reshape(-1).data<float>().ToArray(), map.shape, Target, Score, Outputs,
            parameters ?? new Dictionary<string, object>());
}
