using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Engine;

/// <summary>The explainable side of one served model: its mirror and what the import learnt about it.</summary>
/// <param name="model">The served model, kept while <paramref name="backprop"/> may be asked for other layers' backwards.</param>
/// <param name="open">Creates an ONNX Runtime session with the served session's options.</param>
public sealed class ModelExplainer(GraphMirror mirror, IReadOnlyList<LayerDescriptor> layers, string? defaultLayer,
    OrtBackprop? backprop = null, ModelProto? model = null, Func<byte[], InferenceSession>? open = null) : IDisposable
{
    /// <summary>Layers whose backward on ONNX Runtime is kept built; Grad-CAM on others builds one per request.</summary>
    public const int KeptLayerBackprops = 4;

    private readonly ConcurrentDictionary<string, Lazy<OrtBackprop?>> _layers = new(StringComparer.Ordinal);

    public GraphMirror Mirror { get; } = mirror;

    /// <summary>4-D tensors of the graph (Grad-CAM candidates), with their shapes on the probe input.</summary>
    public IReadOnlyList<LayerDescriptor> Layers { get; } = layers;

    public string? DefaultLayer { get; } = defaultLayer;

    /// <summary>Gradients computed by ONNX Runtime, where the import showed them right; else null (libtorch autograd).</summary>
    public OrtBackprop? Backprop { get; } = backprop;

    /// <summary>
    /// ∂score/∂<paramref name="layer"/> on ONNX Runtime (the model's backward stopped at the layer),
    /// or null where input gradients are not on ONNX Runtime or that backward cannot be written.
    /// Dispose the lease: a backprop beyond <see cref="KeptLayerBackprops"/> layers lives for one request.
    /// </summary>
    public LayerBackpropLease? LayerBackprop(string layer)
    {
        if (Backprop is null || model is null || open is null) return null;
        if (_layers.TryGetValue(layer, out var kept) || _layers.Count < KeptLayerBackprops)
        {
            kept ??= _layers.GetOrAdd(layer, name => new Lazy<OrtBackprop?>(() => TryBuild(name)));
            return kept.Value is { } built ? new LayerBackpropLease(built, owned: false) : null;
        }
        return TryBuild(layer) is { } transient ? new LayerBackpropLease(transient, owned: true) : null;
    }

    private OrtBackprop? TryBuild(string layer)
    {
        try
        {
            return Backprop!.ForLayer(model!, layer, open!);
        }
        catch (Exception e) when (e is NotSupportedException or OnnxRuntimeException)
        {
            return null; // libtorch autograd computes this layer's gradient
        }
    }

    public void Dispose()
    {
        foreach (var layer in _layers.Values.Where(l => l.IsValueCreated)) layer.Value?.Dispose();
        _layers.Clear();
        Backprop?.Dispose();
        Mirror.Dispose();
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
