using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Tests.Ops;

/// <summary>
/// Builds small ONNX models in C# (one node, or a few) for parity tests: one runtime input "x",
/// any number of initializers, outputs of a declared element type.
/// </summary>
public sealed class OnnxTestModel
{
    private readonly GraphProto _graph = new() { Name = "test" };
    private readonly int _opset;

    public OnnxTestModel(int opset, long[] inputShape)
    {
        _opset = opset;
        InputShape = inputShape;
        _graph.Input.Add(ValueInfo("x", TensorProto.Types.DataType.Float, inputShape));
    }

    public long[] InputShape { get; }

    /// <summary>Another runtime input; negative dimensions are free (named).</summary>
    public OnnxTestModel Input(string name, TensorProto.Types.DataType type, params long[] shape)
    {
        _graph.Input.Add(ValueInfo(name, type, shape));
        return this;
    }

    public OnnxTestModel Node(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = $"{opType}_{_graph.Node.Count}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return this;
    }

    public OnnxTestModel Initializer(string name, float[] values, params long[] shape) =>
        Initializer(name, TensorProto.Types.DataType.Float, shape, t => t.FloatData.AddRange(values));

    public OnnxTestModel Initializer(string name, long[] values, params long[] shape) =>
        Initializer(name, TensorProto.Types.DataType.Int64, shape, t => t.Int64Data.AddRange(values));

    private OnnxTestModel Initializer(string name, TensorProto.Types.DataType type, long[] shape, Action<TensorProto> fill)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type };
        tensor.Dims.AddRange(shape);
        fill(tensor);
        _graph.Initializer.Add(tensor);
        return this;
    }

    public OnnxTestModel Output(string name, TensorProto.Types.DataType type = TensorProto.Types.DataType.Float)
    {
        _graph.Output.Add(new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type } },
        });
        return this;
    }

    public ModelProto Model()
    {
        var model = new ModelProto
        {
            IrVersion = _opset >= 21 ? 10 : _opset >= 19 ? 9 : 8,
            ProducerName = "saliency-tests",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = _opset });
        return model;
    }

    public byte[] Bytes() => Model().ToByteArray();

    /// <summary>Runs <paramref name="use"/> on the model written to a temporary file, deleted after.</summary>
    public void WithFile(Action<string> use)
    {
        var path = Path.Combine(Path.GetTempPath(), $"model-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, Bytes());
        try
        {
            use(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto Floats(string name, params float[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        attribute.Floats.AddRange(values);
        return attribute;
    }

    public static AttributeProto TensorValue(string name, TensorProto value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, long[] shape)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        // Free dimensions: the first is the batch, each other one free of its own (an image's height and width).
        for (var d = 0; d < shape.Length; d++)
            tensorType.Shape.Dim.Add(shape[d] >= 0 ? new TensorShapeProto.Types.Dimension { DimValue = shape[d] }
                : new TensorShapeProto.Types.Dimension { DimParam = d == 0 ? "batch" : $"size{d}" });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }
}
