using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Models;

/// <summary>
/// One version of a model as it is served: its session and descriptor. Reference-counted so a
/// replace or delete retires it at once for new requests while requests already holding a
/// lease finish on it; the session is disposed when the last lease ends.
/// </summary>
public sealed class ServedModel
{
    private readonly Holders _holders = new(); // the store's own hold, dropped by Retire()

    private readonly SharedWeights? _weights;

    /// <param name="weights">The weights the explainer's sessions share (<see cref="SharedWeights"/>), let go with them.</param>
    public ServedModel(ModelDescriptor descriptor, OnnxModel onnx, ModelExplainer? explainer, ModelVersion version, SharedWeights? weights = null)
    {
        Version = version;
        Descriptor = descriptor;
        Onnx = onnx;
        Explainer = explainer;
        _weights = weights;
    }

    public ModelDescriptor Descriptor { get; }

    /// <summary>The version of the store's folder this was loaded from.</summary>
    public ModelVersion Version { get; }
    public OnnxModel Onnx { get; }

    /// <summary>The mirror that explains this version; null when the model cannot be explained.</summary>
    public ModelExplainer? Explainer { get; }

    /// <summary>What this version has predicted (Triton's statistics extension).</summary>
    public Inference.ModelStatistics Statistics { get; } = new();
    public string Name => Descriptor.Name;
    public Preprocessing Preprocessing => Descriptor.Preprocessing;

    /// <summary>Takes a lease unless the model has already been retired and released.</summary>
    public bool TryAcquire() => _holders.TryAcquire();

    public void Release()
    {
        if (!_holders.Release()) return;
        Onnx.Dispose();
        Explainer?.Dispose();
        _weights?.Dispose();
        // A retired version's sessions, mirror and backward graphs free hundreds of MB at once (5×
        // the model file for ViT-B/16). Kept as long as batched work's, for the import that often
        // follows (a new version, a model deleted and imported again: its pages then need no faulting
        // in, ~60k for resnet18 on the service's side), then handed back to the system.
        SaliencyService.Explain.Torch.NativeHeap.TrimWhenBatchesPause();
    }

    /// <summary>Called once by the store when this version stops being served.</summary>
    public void Retire() => Release();
}

/// <summary>A request's hold on one model version; dispose it when the request is done.</summary>
public sealed class ModelLease(ServedModel model) : IDisposable
{
    private int _released;

    public ServedModel Model { get; } = model;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) Model.Release();
    }
}
