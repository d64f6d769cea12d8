using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// Gradients on ONNX Runtime: the served forward records what the backward reads, then the
/// mirror's backward runs as an ONNX graph (<see cref="OrtBackprop"/>). Grad-CAM's layer gradients
/// come from the backward stopped at the layer, built on first use; a layer whose backward cannot
/// be written falls back to <paramref name="fallback"/>.
/// </summary>
/// <param name="model">The served model, kept to build layers' backwards.</param>
/// <param name="open">Creates a session with the served session's options.</param>
public sealed class OrtGradientEngine(OrtBackprop backprop, ModelProto model, Func<byte[], InferenceSession> open, IGradientEngine fallback)
    : IGradientEngine
{
    /// <summary>Layers whose backward is kept built; Grad-CAM on others builds one per request.</summary>
    public const int KeptLayerBackprops = 4;

    private readonly ConcurrentDictionary<string, Lazy<OrtBackprop?>> _layers = new(StringComparer.Ordinal);

    public string Name => GradientEngines.OnnxRuntime;

    /// <summary>The value shapes the backward was written for (<see cref="OrtBackprop.Shapes"/>).</summary>
    public IReadOnlyDictionary<string, TensorInfo> Shapes => backprop.Shapes;

    public ForwardResult Forward(Tensor input, CancellationToken cancellationToken) =>
        backprop.Result(backprop.Forward(input, cancellationToken: cancellationToken), input.shape[0]);

    public Tensor InputGradients(Tensor inputs, Func<ForwardResult, long> target, RectifierRule rule, bool releaseMemory,
        CancellationToken cancellationToken)
    {
        var recorded = backprop.Forward(inputs, releaseMemory, cancellationToken);
        return backprop.InputGradient(inputs, recorded, target(backprop.Result(recorded, inputs.shape[0])), rule, releaseMemory, cancellationToken);
    }

    public (Tensor Activation, Tensor Gradient) LayerGradient(Tensor input, string layer, Func<ForwardResult, long> target,
        CancellationToken cancellationToken)
    {
        using var lease = LayerBackprop(layer);
        if (lease is null) return fallback.LayerGradient(input, layer, target, cancellationToken);
        var recorded = lease.Backprop.Forward(input, cancellationToken: cancellationToken);
        var chosen = target(lease.Backprop.Result(recorded, 1));
        return (recorded[layer], lease.Backprop.InputGradient(input, recorded, chosen, RectifierRule.Gradient, cancellationToken: cancellationToken));
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

    public void Dispose()
    {
        foreach (var layer in _layers.Values.Where(l => l.IsValueCreated)) layer.Value?.Dispose();
        _layers.Clear();
        backprop.Dispose();
        fallback.Dispose();
    }

    private OrtBackprop? TryBuild(string layer)
    {
        try
        {
            return backprop.ForLayer(model, layer, open);
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
