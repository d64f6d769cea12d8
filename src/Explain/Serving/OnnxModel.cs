using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Contracts;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// One ONNX Runtime session, run concurrently by every request on the model. It may be replaced by
/// a session of the same graph that runs faster (<see cref="Replace"/>): runs already under way
/// finish on the old one, which is disposed after the last of them.
/// </summary>
public sealed class OnnxModel : IDisposable
{
    private readonly object _swap = new();
    private SessionLease _current;
    private bool _disposed;

    public OnnxModel(InferenceSession session, string executionProvider)
    {
        _current = new SessionLease(session);
        ExecutionProvider = executionProvider;
        Inputs = session.InputNames.Select(n => Describe(n, session.InputMetadata[n])).ToArray();
        Outputs = session.OutputNames.Select(n => Describe(n, session.OutputMetadata[n])).ToArray();
        Producer = session.ModelMetadata.ProducerName is { Length: > 0 } p ? p : null;
        ElementTypes = session.InputMetadata.Concat(session.OutputMetadata).Where(m => m.Value.IsTensor)
            .ToDictionary(m => m.Key, m => m.Value.ElementDataType, StringComparer.Ordinal);
    }

    /// <summary>The element type of every tensor input and output, by name.</summary>
    public IReadOnlyDictionary<string, TensorElementType> ElementTypes { get; }

    public string ExecutionProvider { get; }

    /// <summary>ONNX Runtime's graph optimizations its session was made with (<see cref="OnnxSessionFactory.Create(string, GraphOptimizationLevel)"/>).</summary>
    public GraphOptimizationLevel GraphOptimization { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;
    public IReadOnlyList<TensorDescriptor> Inputs { get; }
    public IReadOnlyList<TensorDescriptor> Outputs { get; }
    public string? Producer { get; }

    /// <summary>Whether the session it was made with has been replaced (<see cref="Replace"/>).</summary>
    public bool Replaced { get; private set; }

    /// <summary>
    /// Runs go to <paramref name="session"/> from now on; it must have the same inputs and outputs.
    /// False where this model is disposed already: the caller keeps the session.
    /// </summary>
    public bool Replace(InferenceSession session)
    {
        if (!session.InputNames.SequenceEqual(Inputs.Select(i => i.Name)) || !session.OutputNames.SequenceEqual(Outputs.Select(o => o.Name)))
            throw new ArgumentException("A replacing session must have the same inputs and outputs.", nameof(session));
        lock (_swap)
        {
            if (_disposed) return false;
            var old = _current;
            Volatile.Write(ref _current, new SessionLease(session));
            Replaced = true;
            old.Release();
            return true;
        }
    }

    /// <summary>
    /// Feeds named inputs of any element type and returns the named outputs. Inputs are pinned,
    /// not copied. Cancelling sets the run's terminate flag, so ONNX Runtime stops mid-graph and
    /// this throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public NamedTensor[] Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputNames, CancellationToken cancellationToken = default)
    {
        var lease = Acquire();
        try
        {
            return Run(lease.Session, inputs, outputNames, cancellationToken);
        }
        finally
        {
            lease.Release();
        }
    }

    /// <summary>As above, on a session of one's own (one not yet given to <see cref="Replace"/>).</summary>
    internal static NamedTensor[] Run(InferenceSession session, IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputNames,
        CancellationToken cancellationToken = default)
    {
        var pins = new List<GCHandle>();
        var values = new List<OrtValue>();
        try
        {
            foreach (var input in inputs)
            {
                var pin = GCHandle.Alloc(input.Data, GCHandleType.Pinned);
                pins.Add(pin);
                values.Add(OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, input.Type, input.Shape, pin.AddrOfPinnedObject(),
                    input.ElementCount * NamedTensor.ElementSize(input.Type)));
            }
            using var results = Cancellable(runOptions => session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, outputNames),
                cancellationToken);
            return results.Select((output, i) =>
            {
                var info = output.GetTensorTypeAndShape();
                return NamedTensor.FromBytes(outputNames[i], info.ElementDataType, info.Shape, output.GetTensorMutableRawData());
            }).ToArray();
        }
        finally
        {
            values.ForEach(v => v.Dispose());
            pins.ForEach(p => p.Free());
        }
    }

    /// <summary>
    /// Feeds one input float values, converted to its element type, and returns one real-valued
    /// output as float32 (the scored output of predict).
    /// </summary>
    public FloatTensor Run(string inputName, FloatTensor input, string outputName, CancellationToken cancellationToken = default)
    {
        var output = Run([Input(inputName, input)], [outputName], cancellationToken)[0];
        return new FloatTensor(FloatElements.Of(output), output.Shape);
    }

    /// <summary>Float values as the named input takes them (<see cref="FloatElements.ToInput"/>).</summary>
    public NamedTensor Input(string inputName, FloatTensor input) =>
        FloatElements.ToInput(inputName, ElementTypes[inputName], input.Shape, input.Data);

    /// <summary>
    /// Runs <paramref name="run"/> with options whose terminate flag a cancellation sets, so ONNX
    /// Runtime stops mid-graph; a run stopped that way throws <see cref="OperationCanceledException"/>.
    /// It holds <see cref="OrtRunGate.Run"/>: every serving run comes through here.
    /// </summary>
    internal static T Cancellable<T>(Func<RunOptions, T> run, CancellationToken cancellationToken)
    {
        using var runOptions = new RunOptions();
        using var terminate = cancellationToken.Register(() => runOptions.Terminate = true);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            using var gate = OrtRunGate.Run();
            return run(runOptions);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    public void Dispose()
    {
        lock (_swap)
        {
            if (_disposed) return;
            _disposed = true;
            _current.Release();
        }
    }

    /// <summary>A hold on the current session for one run.</summary>
    private SessionLease Acquire()
    {
        while (true)
        {
            var lease = Volatile.Read(ref _current);
            if (lease.TryAcquire()) return lease;
            // Released and not replaced since: this model is disposed.
            if (ReferenceEquals(lease, Volatile.Read(ref _current))) throw new ObjectDisposedException(nameof(OnnxModel));
        }
    }

    /// <summary>A session and the runs holding it, plus the model's own hold until it is replaced or disposed; the last to let go disposes it.</summary>
    private sealed class SessionLease(InferenceSession session)
    {
        private readonly Holders _holders = new();

        public InferenceSession Session { get; } = session;

        public bool TryAcquire() => _holders.TryAcquire();

        public void Release()
        {
            if (_holders.Release()) Session.Dispose();
        }
    }

    private static TensorDescriptor Describe(string name, NodeMetadata metadata)
    {
        if (!metadata.IsTensor) return new TensorDescriptor(name, [], metadata.OnnxValueType.ToString().ToLowerInvariant());
        var shape = metadata.Dimensions.Select(d => d > 0 ? (long)d : -1L).ToArray();
        return new TensorDescriptor(name, shape, DataTypeName(metadata.ElementDataType));
    }

    private static string DataTypeName(TensorElementType type) => type switch
    {
        TensorElementType.Float => "float32",
        TensorElementType.Double => "float64",
        TensorElementType.Float16 => "float16",
        TensorElementType.BFloat16 => "bfloat16",
        _ => type.ToString().ToLowerInvariant(),
    };
}
