using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// Gradients on ONNX Runtime (<see cref="OrtBackprop"/>): one pass computes the forward, chooses
/// the target and back-propagates it. Grad-CAM's layer gradients come from the backward stopped at
/// the layer, built on first use; a layer whose backward cannot be written, and an input of
/// another shape than the backward was written for, fall back to <paramref name="fallback"/>.
/// </summary>
/// <param name="building">
/// The backward, which may still be building when the model is served (an import answers once its
/// check's verdict is in): the first calls wait for it.
/// </param>
public sealed class OrtGradientEngine(Task<OrtBackprop> building, IGradientEngine fallback) : IGradientEngine
{
    /// <summary>Layers whose backward is kept built; Grad-CAM on others builds one per request.</summary>
    public const int KeptLayerBackprops = 4;

    private readonly ConcurrentDictionary<string, Lazy<OrtBackprop?>> _layers = new(StringComparer.Ordinal);
    private Task _warming = Task.CompletedTask;
    private string? _warmedLayer;

    public string Name => GradientEngines.OnnxRuntime;

    /// <summary>The value shapes the backward was written for (<see cref="OrtBackprop.Shapes"/>).</summary>
    public IReadOnlyDictionary<string, TensorInfo> Shapes => Backprop().Shapes;

    /// <summary>The model the backward was written for (<see cref="OrtBackprop.Model"/>).</summary>
    public Onnx.Proto.ModelProto Model => Backprop().Model;

    /// <remarks>
    /// ONNX Runtime runs every node of a session whatever outputs are asked for, so a merged
    /// session's forward costs its whole backward too. Where the warmed layer's backward is built
    /// (Grad-CAM's default layer: the last feature map, a few nodes from the output), its pass
    /// gives the same scores at little more than a forward's cost: a target for integrated
    /// gradients or SmoothGrad is chosen without a whole input-gradient pass (resnet18 on two
    /// cores: 107 ms against 145 for a one-step integrated gradients).
    /// </remarks>
    public ForwardResult Forward(Tensor input, CancellationToken cancellationToken)
    {
        if (Takes(input, cancellationToken) is not { } backprop) return fallback.Forward(input, cancellationToken);
        var shorter = backprop.Merged && _warmedLayer is { } layer && _layers.TryGetValue(layer, out var kept) && kept.IsValueCreated ? kept.Value : null;
        return (shorter ?? backprop).Forward(input, cancellationToken);
    }

    public Tensor InputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken) =>
        Takes(inputs, cancellationToken) is { } backprop
            ? Pass(backprop, inputs, target, rule, summed: false, cancellationToken).Gradient
            : fallback.InputGradients(inputs, target, rule, cancellationToken);

    public Tensor SummedInputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken) =>
        Takes(inputs, cancellationToken) is { } backprop
            ? Pass(backprop, inputs, target, rule, summed: true, cancellationToken).Gradient
            : fallback.SummedInputGradients(inputs, target, rule, cancellationToken);

    public (Tensor Activation, Tensor Gradient) LayerGradient(Tensor input, string layer, TargetChoice target, CancellationToken cancellationToken)
    {
        if (Takes(input, cancellationToken) is null) return fallback.LayerGradient(input, layer, target, cancellationToken);
        using var lease = LayerBackprop(layer);
        if (lease is null) return fallback.LayerGradient(input, layer, target, cancellationToken);
        var pass = Pass(lease.Backprop, input, target, RectifierRule.Gradient, summed: false, cancellationToken);
        return (pass.Layer!, pass.Gradient);
    }

    /// <summary>The backward stopped at <paramref name="layer"/>, or null where it cannot be written. Dispose the lease.</summary>
    public LayerBackpropLease? LayerBackprop(string layer)
    {
        if (_layers.TryGetValue(layer, out var kept) || _layers.Count < KeptLayerBackprops)
        {
            kept ??= _layers.GetOrAdd(layer, name => new Lazy<OrtBackprop?>(() => TryBuild(name)));
            return kept.Value is { } built ? new LayerBackpropLease(built, owned: false) : null;
        }
        return TryBuild(layer) is { } transient ? new LayerBackpropLease(transient, owned: true) : null;
    }

    /// <summary>
    /// Builds <paramref name="layer"/>'s backward in the background (Grad-CAM's default layer, once
    /// the model is imported: its session is a forward of its own, ~100 ms for resnet18); a request
    /// for it meanwhile waits for the same build. Once built, <see cref="Forward"/> runs on it too.
    /// </summary>
    public void Warm(string layer)
    {
        _warmedLayer = layer;
        _warming = building.ContinueWith(_ => LayerBackprop(layer)?.Dispose(), TaskScheduler.Default);
    }

    public void Dispose()
    {
        try
        {
            _warming.Wait();
        }
        catch (AggregateException)
        {
            // A build that failed: the request that needs the layer reports it.
        }
        foreach (var layer in _layers.Values.Where(l => l.IsValueCreated)) layer.Value?.Dispose();
        _layers.Clear();
        try
        {
            building.Wait();
            building.Result.Dispose();
        }
        catch (AggregateException)
        {
            // Nothing was built.
        }
        fallback.Dispose();
    }

    /// <summary>The backward, once built; a build that failed after the model was answered for fails the request.</summary>
    private OrtBackprop Backprop(CancellationToken cancellationToken = default)
    {
        if (building.IsCompletedSuccessfully) return building.Result;
        try
        {
            building.Wait(cancellationToken);
            return building.Result;
        }
        catch (AggregateException e)
        {
            throw new InvalidOperationException("Building this model's ONNX Runtime backward failed after its import: " + e.InnerException?.Message, e.InnerException);
        }
    }

    /// <summary>
    /// The backward where it was written for inputs of this one's shape; null for others (a model
    /// with free image sizes, given another size than its probe's): libtorch autograd takes those.
    /// </summary>
    private OrtBackprop? Takes(Tensor input, CancellationToken cancellationToken) =>
        Backprop(cancellationToken) is var backprop && backprop.Takes(input.shape) ? backprop : null;

    /// <summary>
    /// A pass for the target the graph is told to expect; run again in the rare case the caller
    /// then chooses another (scores that tie, or NaN, ranked differently).
    /// </summary>
    private static BackpropPass Pass(OrtBackprop backprop, Tensor inputs, TargetChoice target, RectifierRule rule, bool summed, CancellationToken cancellationToken)
    {
        var pass = backprop.Run(inputs, target.Expected, rule, summed, cancellationToken);
        var chosen = target.Choose(pass.Result);
        return chosen == pass.Target ? pass : backprop.Run(inputs, chosen, rule, summed, cancellationToken);
    }

    private OrtBackprop? TryBuild(string layer)
    {
        try
        {
            return Backprop().ForLayer(layer);
        }
        catch (Exception e) when (e is NotSupportedException or OnnxRuntimeException)
        {
            return null;
        }
    }
}

/// <summary>A layer's backprop for one request; disposes it only when it was built for that request.</summary>
public sealed class LayerBackpropLease(OrtBackprop backprop, bool owned) : IDisposable
{
    public OrtBackprop Backprop { get; } = backprop;

    public void Dispose()
    {
        if (owned) Backprop.Dispose();
    }
}
