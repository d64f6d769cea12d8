using System.Runtime.InteropServices;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
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
        var tensor = Read(proto);
        GC.KeepAlive(proto); // its raw data may be a view of a mapped file (MappedFile), read as a span in Read
        return tensor;
    }

    private static Tensor Read(TensorProto proto)
    {
        var shape = proto.Dims.ToArray();
        var raw = proto.RawData.Span;
        var type = (DataType)proto.DataType;
        if (raw.Length > 0 && RawType(type) is { } rawType) return FromRaw(proto.Name, raw, shape, type, rawType);
        var count = (int)Tensors.FloatTensor.ElementCount(shape);
        return type switch
        {
            DataType.Float => tensor(proto.FloatData.ToArray(), shape),
            DataType.Double => tensor(Floats(proto.DoubleData.ToArray()), shape),
            DataType.Float16 => tensor(proto.Int32Data.Select(bits => (float)BitConverter.UInt16BitsToHalf((ushort)bits)).ToArray(), shape),
            DataType.Int64 => tensor(proto.Int64Data.ToArray(), shape),
            DataType.Int32 => tensor(Longs(proto.Int32Data.ToArray()), shape),
            DataType.Int16 or DataType.Int8 or DataType.Uint8 => tensor(Longs(proto.Int32Data.ToArray()), shape),
            DataType.Uint16 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, ushort>(raw).ToArray().Select(v => (long)v).ToArray() : Longs(proto.Int32Data.ToArray()), shape),
            DataType.Uint32 => tensor(raw.Length > 0 ? MemoryMarshal.Cast<byte, uint>(raw).ToArray().Select(v => (long)v).ToArray() : proto.Uint64Data.Select(v => (long)v).ToArray(), shape),
            DataType.Bool => tensor(raw.Length > 0 ? raw.ToArray().Select(v => v != 0).ToArray() : proto.Int32Data.Select(v => v != 0).ToArray(), shape),
            _ => throw new UnsupportedOperatorException("(tensor)", 0, $"tensor '{proto.Name}' has data type {type}, which the mirror does not support"),
        } is var result && result.NumberOfElements == count
            ? result
            : throw new UnsupportedOperatorException("(tensor)", 0, $"tensor '{proto.Name}' holds the wrong number of values for its shape");
    }

    /// <summary>
    /// Raw little-endian values copied straight into a libtorch tensor of their own type, then
    /// converted where the mirror computes in another: one native copy, where going through a
    /// managed array took three (a 46 MB model's weights faulted ~30k fresh pages at import).
    /// </summary>
    private static Tensor FromRaw(string name, ReadOnlySpan<byte> raw, long[] shape, DataType type, ScalarType rawType)
    {
        if (!Fills(raw, shape, type))
            throw new UnsupportedOperatorException("(tensor)", 0, $"tensor '{name}' holds the wrong number of values for its shape");
        var read = empty(shape, rawType);
        raw.CopyTo(read.bytes);
        var computeType = ComputeType((long)type);
        if (rawType == computeType) return read;
        using (read) return read.to_type(computeType);
    }

    /// <summary>Whether the raw bytes are exactly the shape's values: checked before anything is allocated, as the shape is the untrusted file's word.</summary>
    private static bool Fills(ReadOnlySpan<byte> raw, long[] shape, DataType type)
    {
        if (shape.Any(d => d < 0)) return false;
        try
        {
            // ONNX's element type numbers are ONNX Runtime's.
            return raw.Length == checked(Tensors.FloatTensor.ElementCount(shape) * NamedTensor.ElementSize((TensorElementType)type));
        }
        catch (OverflowException)
        {
            return false;
        }
    }

    /// <summary>The libtorch type that holds an ONNX element type's raw bytes as they are; null where none does.</summary>
    private static ScalarType? RawType(DataType type) => type switch
    {
        DataType.Float => ScalarType.Float32,
        DataType.Double => ScalarType.Float64,
        DataType.Float16 => ScalarType.Float16,
        DataType.Int64 => ScalarType.Int64,
        DataType.Int32 => ScalarType.Int32,
        DataType.Int16 => ScalarType.Int16,
        DataType.Int8 => ScalarType.Int8,
        DataType.Uint8 => ScalarType.Byte,
        _ => null,
    };

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
