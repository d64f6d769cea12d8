using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// One served model's weights, shared by every CPU session the engine writes from it (each rule's
/// pass, each Grad-CAM layer's, the summed passes, the Winograd predictions): they live once, in
/// the model's <see cref="WeightsFile"/>, handed to each session as ONNX Runtime's shared
/// initializers, and each weight ONNX Runtime packs for its kernels (a Gemm's) is packed once for
/// all of them (its prepacked-weights container). Without it each session kept its own copy of
/// the weights and of their packed forms: VGG-16's (553 MB of weights) ~1.2 GB a session.
/// A session finds them by the model it is made from (<see cref="Of"/>): its initializers are
/// views of the file. The weights, the container and the file last until the owner and every
/// session made with them are done.
/// </summary>
public sealed class SharedWeights : IDisposable
{
    private static readonly ConcurrentDictionary<MappedFile, SharedWeights> Owned = new();

    private readonly WeightsFile _file;
    private readonly Dictionary<(int Offset, int Length), OrtValue> _values = new();
    private readonly PrePackedWeightsContainer _prepacked = new();
    private int _holders = 1; // the owner, and each live session
    private bool _disposed;

    private SharedWeights(WeightsFile file, ModelProto model)
    {
        _file = file;
        foreach (var tensor in model.Graph.Initializer)
            if (Place(tensor) is { } place && ElementType(tensor) is { } type)
                _values[place] = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, [.. tensor.Dims], Address(place.Offset), place.Length);
    }

    /// <summary>
    /// Moves <paramref name="model"/>'s weights into a file in <paramref name="folder"/> (<see cref="WeightsFile.Move"/>)
    /// and shares them with the sessions made from it from now on; null where it has none to move.
    /// </summary>
    public static SharedWeights? Create(ModelProto model, string folder)
    {
        if (WeightsFile.Move(model, folder) is not { } file) return null;
        var shared = new SharedWeights(file, model);
        Owned[file.Bytes] = shared;
        return shared;
    }

    /// <summary>The shared weights <paramref name="model"/>'s initializers are views of, while their owner serves them; else null.</summary>
    internal static SharedWeights? Of(ModelProto model)
    {
        foreach (var tensor in model.Graph.Initializer)
            if (MemoryMarshal.TryGetMemoryManager<byte, MappedFile>(tensor.RawData.Memory, out var file) && Owned.TryGetValue(file, out var shared))
                return shared;
        return null;
    }

    /// <summary>
    /// A CPU session of <paramref name="model"/> (as <paramref name="bytes"/>) that reads every
    /// weight it shares with this set from it; null where the owner has let them go.
    /// </summary>
    internal InferenceSession? Open(ModelProto model, byte[] bytes, SessionOptions options)
    {
        lock (_values)
        {
            if (_holders == 0 || _disposed) return null;
            _holders++;
        }
        try
        {
            foreach (var tensor in model.Graph.Initializer)
                if (Place(tensor) is { } place && _values.TryGetValue(place, out var value))
                    options.AddInitializer(tensor.Name, value);
            return new Session(bytes, options, this);
        }
        catch
        {
            Release();
            throw;
        }
    }

    /// <summary>No new session shares the weights; they go once the sessions made with them are disposed.</summary>
    public void Dispose()
    {
        lock (_values)
        {
            if (_disposed) return;
            _disposed = true;
        }
        Owned.TryRemove(_file.Bytes, out _);
        Release();
    }

    private void Release()
    {
        lock (_values)
        {
            if (--_holders > 0) return;
        }
        foreach (var value in _values.Values) value.Dispose();
        _prepacked.Dispose();
        _file.Dispose();
    }

    /// <summary>Where in the file a tensor's data is; null where it is not a view of it.</summary>
    private (int Offset, int Length)? Place(TensorProto tensor) =>
        MemoryMarshal.TryGetMemoryManager<byte, MappedFile>(tensor.RawData.Memory, out var file, out var offset, out var length) && file == _file.Bytes
            ? (offset, length)
            : null;

    private unsafe IntPtr Address(int offset) => (IntPtr)((byte*)_file.Bytes.Pin().Pointer + offset);

    /// <summary>ONNX Runtime's element type of a tensor of fixed-size elements whose data fills its shape; else null (left to the session's own copy).</summary>
    private static TensorElementType? ElementType(TensorProto tensor)
    {
        var type = (TensorElementType)tensor.DataType; // ONNX Runtime numbers its element types as ONNX does
        return NamedTensor.Holds(type) && tensor.Dims.All(d => d >= 0)
               && tensor.Dims.Aggregate(1L, (n, d) => n * d) * NamedTensor.ElementSize(type) == tensor.RawData.Length
            ? type
            : null;
    }

    /// <summary>A session that holds the weights (and their packed forms) until it is disposed.</summary>
    private sealed class Session(byte[] bytes, SessionOptions options, SharedWeights weights) : InferenceSession(bytes, options, weights._prepacked)
    {
        private int _released;

        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (Interlocked.Exchange(ref _released, 1) == 0) weights.Release();
        }
    }
}
