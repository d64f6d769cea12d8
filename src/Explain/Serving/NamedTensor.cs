using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// A model input or output of any element type: its name, ONNX element type, shape and row-major
/// elements in a primitive array of that type's width (<see cref="ClrType"/>: float16 and bfloat16
/// as their ushort bits, bool as bytes 0/1). <see cref="Data"/> may be longer than the shape (a
/// batch's reused array): the tensor is its first <see cref="ElementCount"/> elements.
/// </summary>
public sealed record NamedTensor(string Name, TensorElementType Type, long[] Shape, Array Data)
{
    /// <summary>The element types a tensor may hold, with the array element type that stores each.</summary>
    public static Type ClrType(TensorElementType type) => StoredAs(type) ?? throw new UnsupportedModelException($"Tensors of {type} are not supported.");

    /// <summary>Whether a tensor may hold elements of <paramref name="type"/>.</summary>
    public static bool Holds(TensorElementType type) => StoredAs(type) is not null;

    private static Type? StoredAs(TensorElementType type) => type switch
    {
        TensorElementType.Float => typeof(float),
        TensorElementType.Double => typeof(double),
        TensorElementType.Float16 or TensorElementType.BFloat16 or TensorElementType.UInt16 => typeof(ushort),
        TensorElementType.Int8 => typeof(sbyte),
        TensorElementType.Int16 => typeof(short),
        TensorElementType.Int32 => typeof(int),
        TensorElementType.Int64 => typeof(long),
        TensorElementType.UInt8 or TensorElementType.Bool => typeof(byte),
        TensorElementType.UInt32 => typeof(uint),
        TensorElementType.UInt64 => typeof(ulong),
        _ => null,
    };

    public static int ElementSize(TensorElementType type) => Marshal.SizeOf(ClrType(type));

    /// <summary>An array for <paramref name="count"/> elements of the type.</summary>
    public static Array Allocate(TensorElementType type, long count) => Array.CreateInstance(ClrType(type), count);

    /// <summary>A tensor over a copy of raw little-endian bytes.</summary>
    public static NamedTensor FromBytes(string name, TensorElementType type, long[] shape, ReadOnlySpan<byte> bytes)
    {
        var data = Allocate(type, bytes.Length / ElementSize(type));
        bytes.CopyTo(MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(data), bytes.Length));
        return new NamedTensor(name, type, shape, data);
    }

    public long ElementCount => Tensors.FloatTensor.ElementCount(Shape);

    /// <summary>The elements' raw bytes (no copy).</summary>
    public ReadOnlySpan<byte> Bytes =>
        MemoryMarshal.CreateReadOnlySpan(ref MemoryMarshal.GetArrayDataReference(Data), checked((int)(ElementCount * ElementSize(Type))));

    /// <summary>Samples <paramref name="start"/>..+<paramref name="count"/> of the first dimension.</summary>
    public NamedTensor Slice(long start, long count)
    {
        if (start == 0 && count == Shape[0]) return this;
        var perSample = ElementCount / Shape[0];
        var data = Allocate(Type, count * perSample);
        Array.Copy(Data, start * perSample, data, 0, count * perSample);
        return this with { Shape = [count, .. Shape[1..]], Data = data };
    }

    /// <summary>
    /// The tensors one after the other along the first dimension (same name, type and sample
    /// shape), written into <paramref name="reuse"/> when it is of their type and long enough.
    /// </summary>
    public static NamedTensor Concatenate(IReadOnlyList<NamedTensor> parts, Array? reuse)
    {
        if (parts.Count == 1) return parts[0];
        var count = parts.Sum(p => p.ElementCount);
        var data = reuse is not null && reuse.GetType().GetElementType() == ClrType(parts[0].Type) && reuse.LongLength >= count
            ? reuse
            : Allocate(parts[0].Type, count);
        long offset = 0;
        foreach (var part in parts)
        {
            Array.Copy(part.Data, 0, data, offset, part.ElementCount);
            offset += part.ElementCount;
        }
        return parts[0] with { Shape = [parts.Sum(p => p.Shape[0]), .. parts[0].Shape[1..]], Data = data };
    }
}
