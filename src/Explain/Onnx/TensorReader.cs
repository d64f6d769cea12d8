using System.Runtime.InteropServices;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// Turns ONNX tensors (initializers, Constant values) into libtorch tensors: floating types as
/// float32 (the mirror computes in float32, as ONNX Runtime does), integers as int64, bools as bool.
/// </summary>
public static class TensorReader
{
    public static Tensor ToTorch(TensorProto proto)
    {
        var shape = proto.Dims.ToArray();
        var count = (int)shape.Aggregate(1L, (a, d) => checked(a * d));
        var raw = proto.RawData.Span;
        var type = (DataType)proto.DataType;
        return type switch
        {
            DataType.Float => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : proto.FloatData.ToArray(), shape),
            DataType.Double => tensor(Floats(raw.Length > 0 ? MemoryMarshal.Cast<byte, double>(raw).ToArray() : proto.DoubleData.ToArray()), shape),
            DataType.Float16 => tensor(raw.Length > 0
                ? MemoryMarshal.Cast<byte, Half>(raw).ToArray().Select(h => (float)h).ToArray()
                : proto.Int32Data.Select(bits => (float)BitConverter.UInt16BitsToHalf((ushort)bits)).ToArray(), shape),
            DataType.Int64 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, long>(raw).ToArray() : proto.Int64Data.ToArray(), shape),
            DataType.Int32 => tensor(Longs(raw.Length > 0 ? MemoryMarshal.Cast<byte, int>(raw).ToArray() : proto.Int32Data.ToArray()), shape),
            DataType.Int16 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, short>(raw).ToArray().Select(v => (long)v).ToArray() : Longs(proto.Int32Data.ToArray()), shape),
            DataType.Int8 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, sbyte>(raw).ToArray().Select(v => (long)v).ToArray() : Longs(proto.Int32Data.ToArray()), shape),
            DataType.Uint8 => tensor(raw.Length > 0 ? raw.ToArray().Select(v => (long)v).ToArray() : Longs(proto.Int32Data.ToArray()), shape),
            DataType.Uint16 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, ushort>(raw).ToArray().Select(v => (long)v).ToArray() : Longs(proto.Int32Data.ToArray()), shape),
            DataType.Uint32 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, uint>(raw).ToArray().Select(v => (long)v).ToArray() : proto.Uint64Data.Select(v => (long)v).ToArray(), shape),
            DataType.Bool => tensor(raw.Length > 0 ? raw.ToArray().Select(v => v != 0).ToArray() : proto.Int32Data.Select(v => v != 0).ToArray(), shape),
            _ => throw new UnsupportedOperatorException("(tensor)", 0, $"tensor '{proto.Name}' has data type {type}, which the mirror does not support"),
        } is var result && result.NumberOfElements == count
            ? result
            : throw new UnsupportedOperatorException("(tensor)", 0, $"tensor '{proto.Name}' holds the wrong number of values for its shape");
    }

    /// <summary>The torch dtype an ONNX element type computes in (see the class summary).</summary>
    public static ScalarType ComputeType(long onnxType) => (DataType)onnxType switch
    {
        DataType.Float or DataType.Double or DataType.Float16 or DataType.Bfloat16 => ScalarType.Float32,
        DataType.Bool => ScalarType.Bool,
        DataType.Int64 or DataType.Int32 or DataType.Int16 or DataType.Int8 or DataType.Uint8
            or DataType.Uint16 or DataType.Uint32 or DataType.Uint64 => ScalarType.Int64,
        var other => throw new UnsupportedOperatorException("Cast", 0, $"element type {other} is not supported"),
    };

    private static float[] Floats(double[] values) => values.Select(v => (float)v).ToArray();

    private static long[] Longs(int[] values) => values.Select(v => (long)v).ToArray();
}
