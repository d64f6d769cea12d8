using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// The graph the explainer reads, real-valued float32 where the served one is not:
/// <list type="bullet">
/// <item>an integer input whose every use is a Cast to float (tf2onnx's uint8 image models) is
/// declared float. That graph is the same function on every integer input (a Cast of a float to
/// float changes nothing) and a real-valued one between them, so it has gradients with respect to
/// the pixels;</item>
/// <item>float16 and bfloat16 (weights, constants, casts, inputs and outputs) become float32: the
/// same weights in float32 arithmetic, as Captum explains <c>model.float()</c>. Its parity with the
/// served model is then checked at half precision's tolerance (<see cref="IsFromHalfPrecision"/>).</item>
/// </list>
/// The import's parity check still compares that graph with the served model, fed its own types.
/// </summary>
public static class Float32Graph
{
    /// <summary>Marks, in the model's metadata, a graph widened from half precision.</summary>
    private const string WidenedFrom = "saliency.widened_from";

    /// <summary>Widens <paramref name="model"/> in place, as the class says; returns the model.</summary>
    public static ModelProto Widen(ModelProto model)
    {
        if (model.Graph is not { } graph) return model;
        // Half precision first: then an integer input cast to float16 is one cast to float.
        if (WidenHalfPrecision(graph)) model.MetadataProps.Add(new StringStringEntryProto { Key = WidenedFrom, Value = "half precision" });
        WidenIntegerInputs(graph);
        return model;
    }

    /// <summary>Whether <see cref="Widen"/> turned half-precision values of the model into float32.</summary>
    public static bool IsFromHalfPrecision(ModelProto model) => model.MetadataProps.Any(p => p.Key == WidenedFrom);

    private static void WidenIntegerInputs(GraphProto graph)
    {
        var initialized = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var input in graph.Input)
        {
            // (An initializer listed as an input, as older exporters write them, keeps its own type.)
            if (input.Type?.TensorType is not { } tensor || !FloatElements.IsInteger((TensorElementType)tensor.ElemType) || initialized.Contains(input.Name)) continue;
            var uses = graph.Node.Where(n => n.Input.Contains(input.Name)).ToArray();
            // (ONNX Runtime's element types are ONNX's own numbers.)
            var castsToFloat = uses.Length > 0 && uses.All(n => n.OpType == "Cast" && n.Domain is "" or "ai.onnx"
                && n.Attribute.FirstOrDefault(a => a.Name == "to")?.I is (long)DataType.Float or (long)DataType.Double);
            if (castsToFloat && graph.Output.All(o => o.Name != input.Name))
                tensor.ElemType = (int)DataType.Float;
        }
    }

    /// <summary>Turns every half-precision value of the graph float32; whether there was one.</summary>
    private static bool WidenHalfPrecision(GraphProto graph)
    {
        var widened = false;
        foreach (var value in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo))
            if (value.Type?.TensorType is { } tensor && IsHalf(tensor.ElemType))
            {
                tensor.ElemType = (int)DataType.Float;
                widened = true;
            }
        foreach (var tensor in graph.Initializer) widened |= WidenTensor(tensor);
        foreach (var attribute in graph.Node.SelectMany(n => n.Attribute))
        {
            if (attribute.T is { } tensor) widened |= WidenTensor(tensor);
            // Cast's "to"; "dtype" of the ops that make values (EyeLike, RandomNormal, ...).
            if (attribute.Name is "to" or "dtype" && attribute.Type == AttributeProto.Types.AttributeType.Int && IsHalf(attribute.I))
            {
                attribute.I = (long)DataType.Float;
                widened = true;
            }
        }
        return widened;
    }

    private static bool IsHalf(long type) => type is (long)DataType.Float16 or (long)DataType.Bfloat16;

    /// <summary>
    /// A half-precision tensor's values as float32, in place. One whose data does not fill its shape,
    /// or whose float32 values no array holds, is left as it is, for the mirror to refuse.
    /// </summary>
    private static bool WidenTensor(TensorProto tensor)
    {
        if (!IsHalf(tensor.DataType)) return false;
        var raw = tensor.RawData.Span;
        var count = raw.Length > 0 ? raw.Length / 2 : tensor.Int32Data.Count;
        if (raw.Length % 2 != 0 || !Fills(tensor.Dims, count) || count > Array.MaxLength / sizeof(float)) return false;
        var half = tensor.DataType == (int)DataType.Float16;
        // One new buffer, the float32 values' own: no copy of the (possibly mapped) half-precision data.
        var bytes = new byte[count * sizeof(float)];
        var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
        var bits = MemoryMarshal.Cast<byte, ushort>(raw);
        for (var i = 0; i < count; i++)
        {
            var b = raw.Length > 0 ? bits[i] : (ushort)tensor.Int32Data[i];
            values[i] = half ? (float)BitConverter.UInt16BitsToHalf(b) : BitConverter.Int32BitsToSingle(b << 16);
        }
        tensor.DataType = (int)DataType.Float;
        tensor.Int32Data.Clear();
        tensor.RawData = UnsafeByteOperations.UnsafeWrap(bytes);
        return true;
    }

    /// <summary>Whether <paramref name="count"/> values are exactly the shape's (the untrusted file's word).</summary>
    private static bool Fills(IEnumerable<long> dims, long count)
    {
        double product = 1;
        foreach (var d in dims) product = d < 0 ? double.NaN : product * d;
        return product == count;
    }
}
