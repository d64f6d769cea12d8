using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain;

namespace SaliencyService.Api.OpenInference;

/// <summary>The protocol's datatype names for ONNX element types.</summary>
public static class V2DataTypes
{
    private static readonly Dictionary<string, TensorElementType> ByName = new(StringComparer.Ordinal)
    {
        ["BOOL"] = TensorElementType.Bool,
        ["UINT8"] = TensorElementType.UInt8, ["UINT16"] = TensorElementType.UInt16,
        ["UINT32"] = TensorElementType.UInt32, ["UINT64"] = TensorElementType.UInt64,
        ["INT8"] = TensorElementType.Int8, ["INT16"] = TensorElementType.Int16,
        ["INT32"] = TensorElementType.Int32, ["INT64"] = TensorElementType.Int64,
        ["FP16"] = TensorElementType.Float16, ["BF16"] = TensorElementType.BFloat16,
        ["FP32"] = TensorElementType.Float, ["FP64"] = TensorElementType.Double,
    };

    /// <summary>The datatype's name; strings (a classification's answer) are BYTES, which no input here takes.</summary>
    public static string Name(TensorElementType type) =>
        type == TensorElementType.String ? "BYTES" : ByName.FirstOrDefault(p => p.Value == type).Key ?? type.ToString().ToUpperInvariant();

    /// <summary>The element type of a datatype name; an unknown one is an <see cref="InvalidArgumentException"/>.</summary>
    public static TensorElementType Parse(string? name, string input) =>
        name is not null && ByName.TryGetValue(name, out var type)
            ? type
            : throw new InvalidArgumentException($"Input '{input}' has datatype '{name}'; use one of: {string.Join(", ", ByName.Keys)}.");
}
