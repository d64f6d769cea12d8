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
    }

    public string ExecutionProvider { get; }
    public IReadOnlyList<TensorDescriptor> Inputs { get; }
    public IReadOnlyList<TensorDescriptor> Outputs { get; }
    public string? Producer { get; }

    /// <summary>
    /// Feeds one float input and returns one float output. Cancelling sets the run's terminate
    /// flag, so ONNX Runtime stops mid-graph and this throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public FloatTensor Run(string inputName, FloatTensor input, string outputName, CancellationToken cancellationToken = default)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(input.Data, input.Shape);
        using var results = Cancellable(runOptions => _session.Run(runOptions, [inputName], [value], [outputName]), cancellationToken);
        var output = results[0];
        var info = output.GetTensorTypeAndShape();
        if (info.ElementDataType != TensorElementType.Float)
            throw new UnsupportedModelException($"Output '{outputName}' is {info.ElementDataType}; only float32 outputs can be scored.");
        return new FloatTensor(output.GetTensorDataAsSpan<float>().ToArray(), info.Shape);
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
