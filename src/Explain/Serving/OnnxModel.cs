using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Contracts;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// One ONNX Runtime session, created once and run concurrently by every request on the model.
/// </summary>
public sealed class OnnxModel : IDisposable
{
    private readonly InferenceSession _session;

    public OnnxModel(InferenceSession session, string executionProvider)
    {
        _session = session;
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
    public IReadOnlyList<TensorDescriptor> Inputs { get; }
    public IReadOnlyList<TensorDescriptor> Outputs { get; }
    public string? Producer { get; }

    /// <summary>
    /// Feeds named inputs of any element type and returns the named outputs. Inputs are pinned,
    /// not copied. Cancelling sets the run's terminate flag, so ONNX Runtime stops mid-graph and
    /// this throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public NamedTensor[] Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputNames, CancellationToken cancellationToken = default)
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
            using var results = Cancellable(runOptions => _session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, outputNames),
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

    /// <summary>Feeds one float input and returns one float output (the scored output of predict).</summary>
    public FloatTensor Run(string inputName, FloatTensor input, string outputName, CancellationToken cancellationToken = default)
    {
        var output = Run([new NamedTensor(inputName, TensorElementType.Float, input.Shape, input.Data)], [outputName], cancellationToken)[0];
        if (output.Type != TensorElementType.Float)
            throw new UnsupportedModelException($"Output '{outputName}' is {output.Type}; only float32 outputs can be scored.");
        return new FloatTensor((float[])output.Data, output.Shape);
    }

    /// <summary>
    /// Runs <paramref name="run"/> with options whose terminate flag a cancellation sets, so ONNX
    /// Runtime stops mid-graph; a run stopped that way throws <see cref="OperationCanceledException"/>.
    /// </summary>
    internal static T Cancellable<T>(Func<RunOptions, T> run, CancellationToken cancellationToken)
    {
        using var runOptions = new RunOptions();
        using var terminate = cancellationToken.Register(() => runOptions.Terminate = true);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            return run(runOptions);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    public void Dispose() => _session.Dispose();

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
