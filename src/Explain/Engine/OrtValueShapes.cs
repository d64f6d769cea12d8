using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;
using FloatTensor = SaliencyService.Explain.Tensors.FloatTensor;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// The shapes of a model's values on an input as ONNX Runtime computes them, typed as the mirror
/// computes them (<see cref="GraphMirror.ShapesOf"/>): as it infers them while it loads the graph
/// for that input's shape (<see cref="Inferred"/>), or where those are not all known, from one run
/// of the model whose outputs are each value's shape and first elements (an integer value's, where
/// it is small, are its values: <see cref="Run"/>). The import check learns the batch of two's
/// shapes so: the values themselves are never handed out, so the run keeps ONNX Runtime's memory
/// reuse, and libtorch's float32 forward, slow where oneDNN is capped, stays off the check's path.
/// </summary>
public static class OrtValueShapes
{
    /// <summary>The first elements read: one more than the most <see cref="GraphMirror.ShapesOf"/> keeps values of.</summary>
    private const long Head = GraphMirror.KeptValues + 1;

    private const string Prefix = "saliency.shapes::";

    /// <summary>The oldest opset whose Slice and Reshape take their bounds as inputs and every element type.</summary>
    private const int OldestOpset = 10;

    /// <summary>
    /// The shapes ONNX Runtime infers while it loads the model with its input's dimensions fixed to
    /// <paramref name="inputShape"/> and each asked value an output: no run. Null where one is not
    /// known in full, or is an integer value small enough that the mirror keeps its elements
    /// (<see cref="GraphMirror.KeptValues"/>): then a run tells them (<see cref="Run"/>). A resnet18
    /// session that only loads the graph took 12 ms here, against 68 ms and a 50 ms run.
    /// </summary>
    /// <param name="names">As for <see cref="Run"/>.</param>
    /// <param name="inspect">Creates a session that only loads the graph (<see cref="Serving.OnnxSessionFactory.Inspect"/>).</param>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime refuses the graph.</exception>
    public static Dictionary<string, TensorInfo>? Inferred(ModelProto model, IReadOnlyList<string> names, string inputName, long[] inputShape,
        ScalarType floatType, Func<ModelProto, InferenceSession> inspect)
    {
        var inferring = model.Clone(); // the weights' bytes are shared, not copied
        var graph = inferring.Graph;
        if (graph.Input.FirstOrDefault(i => i.Name == inputName)?.Type?.TensorType is not { } input) return null;
        input.Shape = new TensorShapeProto();
        foreach (var d in inputShape) input.Shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        graph.ValueInfo.Clear(); // the exporter's symbolic shapes: ONNX Runtime infers them again for this input
        WeightsAsInputs(graph);
        graph.Output.Clear();
        var asked = Asked(names, inputName);
        foreach (var name in asked) graph.Output.Add(new ValueInfoProto { Name = name });

        using var session = inspect(inferring);
        var shapes = new Dictionary<string, TensorInfo>(StringComparer.Ordinal) { [inputName] = new TensorInfo(inputShape, floatType) };
        foreach (var name in asked)
        {
            var metadata = session.OutputMetadata[name];
            if (!metadata.IsTensor || metadata.Dimensions.Any(d => d < 0)) return null;
            long[] shape = [.. metadata.Dimensions.Select(d => (long)d)];
            ScalarType type;
            try
            {
                type = TensorReader.ComputeType((long)metadata.ElementDataType);
            }
            catch (UnsupportedOperatorException)
            {
                return null; // not a type the mirror computes: its build says so
            }
            if (type == ScalarType.Int64 && shape.Aggregate(1L, (n, d) => n * d) <= GraphMirror.KeptValues) return null;
            shapes[name] = new TensorInfo(shape, type == ScalarType.Float32 ? floatType : type);
        }
        return shapes;
    }

    /// <param name="names">The values asked for (the mirror's <see cref="GraphMirror.ActivationNames"/>); the input's shape is <paramref name="input"/>'s.</param>
    /// <param name="input">A float32 input for the model's only input, <paramref name="inputName"/>.</param>
    /// <param name="floatType">What the mirror computes floating-point values in.</param>
    /// <param name="open">Creates a session with the served session's options.</param>
    /// <exception cref="NotSupportedException">The model's opset is older than Slice's inputs, or its names are in this graph's namespace.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime refuses the graph or the run.</exception>
    public static Dictionary<string, TensorInfo> Run(ModelProto model, IReadOnlyList<string> names, string inputName, Tensor input,
        ScalarType floatType, Func<ModelProto, InferenceSession> open)
    {
        var opset = OnnxFile.DefaultOpset(model);
        if (opset < OldestOpset) throw new NotSupportedException($"opset {opset} is older than {OldestOpset}");
        var graph = model.Graph;
        if (graph.Node.SelectMany(n => n.Output).Concat(graph.Initializer.Select(i => i.Name)).Any(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
            throw new NotSupportedException($"the model's names use '{Prefix}'");

        var asked = Asked(names, inputName);
        using var session = open(Reading(model, asked));
        using var contiguous = input.contiguous(); // held while ONNX Runtime reads its memory
        using var value = OrtBackprop.Wrap(contiguous);
        var outputs = asked.SelectMany((_, i) => new[] { ShapeOf(i), HeadOf(i) }).ToArray();
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, [inputName], [value], outputs);
        var shapes = new Dictionary<string, TensorInfo>(StringComparer.Ordinal)
        {
            [inputName] = new TensorInfo(input.shape, floatType),
        };
        for (var i = 0; i < asked.Length; i++)
        {
            var shape = results[2 * i].GetTensorDataAsSpan<long>().ToArray();
            var head = results[2 * i + 1];
            var type = TensorReader.ComputeType((long)head.GetTensorTypeAndShape().ElementDataType);
            if (type == ScalarType.Float32) type = floatType;
            var values = type == ScalarType.Int64 && shape.Aggregate(1L, (n, d) => n * d) <= GraphMirror.KeptValues ? Longs(head) : null;
            shapes[asked[i]] = new TensorInfo(shape, type, values);
        }
        return shapes;
    }

    /// <summary>Elements from which an initializer is a weight whose values no shape depends on (shapes, axes and scales are a few).</summary>
    public const long WeightElements = 1024;

    /// <summary>
    /// The graph's weights made inputs of their type and shape, which is all that inference reads of
    /// them: the inspecting session neither copies them (resnet18's 46 MB, serialised for it in the
    /// service) nor loads them from the file they reference (in the check).
    /// </summary>
    private static void WeightsAsInputs(GraphProto graph)
    {
        var isWeight = graph.Initializer.ToLookup(w => FloatTensor.ElementCount(w.Dims) >= WeightElements);
        if (!isWeight[true].Any()) return;
        var kept = isWeight[false].ToList();
        graph.Initializer.Clear();
        graph.Initializer.Add(kept);
        var inputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal); // an older model lists its weights as inputs too
        foreach (var weight in isWeight[true].Where(w => inputs.Add(w.Name)))
            graph.Input.Add(BackwardGraph.ValueInfo(weight.Name, (TensorProto.Types.DataType)weight.DataType, [.. weight.Dims]));
    }

    private static string[] Asked(IReadOnlyList<string> names, string inputName) => names.Where(n => n != inputName).Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>The model with, as its only outputs, each asked value's shape and its first <see cref="Head"/> elements.</summary>
    private static ModelProto Reading(ModelProto model, IReadOnlyList<string> asked)
    {
        var reading = model.Clone(); // the weights' bytes are shared, not copied
        var graph = reading.Graph;
        graph.Output.Clear();
        string flat = Prefix + "flat", start = Prefix + "start", end = Prefix + "end";
        graph.Initializer.Add(Longs(flat, -1));
        graph.Initializer.Add(Longs(start, 0));
        graph.Initializer.Add(Longs(end, Head));
        for (var i = 0; i < asked.Count; i++)
        {
            var flattened = $"{Prefix}flattened/{i}";
            graph.Node.Add(Node("Shape", [asked[i]], ShapeOf(i)));
            graph.Node.Add(Node("Reshape", [asked[i], flat], flattened));
            graph.Node.Add(Node("Slice", [flattened, start, end], HeadOf(i)));
            graph.Output.Add(new ValueInfoProto { Name = ShapeOf(i) });
            graph.Output.Add(new ValueInfoProto { Name = HeadOf(i) });
        }
        return reading;
    }

    private static string ShapeOf(int i) => $"{Prefix}shape/{i}";

    private static string HeadOf(int i) => $"{Prefix}head/{i}";

    private static NodeProto Node(string opType, string[] inputs, string output)
    {
        var node = new NodeProto { OpType = opType, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        return node;
    }

    private static TensorProto Longs(string name, long value)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.Add(1);
        tensor.Int64Data.Add(value);
        return tensor;
    }

    /// <summary>An integer tensor's elements, whatever its width.</summary>
    private static long[] Longs(OrtValue value) => value.GetTensorTypeAndShape().ElementDataType switch
    {
        TensorElementType.Int64 => value.GetTensorDataAsSpan<long>().ToArray(),
        TensorElementType.Int32 => [.. value.GetTensorDataAsSpan<int>().ToArray().Select(v => (long)v)],
        TensorElementType.Int16 => [.. value.GetTensorDataAsSpan<short>().ToArray().Select(v => (long)v)],
        TensorElementType.Int8 => [.. value.GetTensorDataAsSpan<sbyte>().ToArray().Select(v => (long)v)],
        TensorElementType.UInt8 => [.. value.GetTensorDataAsSpan<byte>().ToArray().Select(v => (long)v)],
        TensorElementType.UInt16 => [.. value.GetTensorDataAsSpan<ushort>().ToArray().Select(v => (long)v)],
        TensorElementType.UInt32 => [.. value.GetTensorDataAsSpan<uint>().ToArray().Select(v => (long)v)],
        TensorElementType.UInt64 => [.. value.GetTensorDataAsSpan<ulong>().ToArray().Select(v => (long)v)],
        var other => throw new NotSupportedException($"{other} is not an integer type"),
    };
}
