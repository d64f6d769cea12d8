using Microsoft.ML.OnnxRuntime.Tensors;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// The float32 values predict and explain speak (an image through the manifest, a float32 <c>.npy</c>)
/// converted to the element type a model's input holds, and a real-valued output's back to float32:
/// models exported in float16, or taking an image's uint8 pixels (tf2onnx's image models), serve too.
/// </summary>
public static class FloatElements
{
    /// <summary>Whether a descriptor's <c>dataType</c> names a real-valued type.</summary>
    public static bool IsReal(string dataType) => dataType is "float32" or "float16" or "bfloat16" or "float64";

    /// <summary>Whether the type holds integers (an image input of it takes pixel values as they are).</summary>
    public static bool IsInteger(TensorElementType type) => type is TensorElementType.UInt8 or TensorElementType.Int8
        or TensorElementType.UInt16 or TensorElementType.Int16 or TensorElementType.UInt32 or TensorElementType.Int32
        or TensorElementType.UInt64 or TensorElementType.Int64;

    /// <summary>As above, for a descriptor's <c>dataType</c> (an integer type's name in lower case: <c>uint8</c>).</summary>
    public static bool IsInteger(string dataType) => Enum.TryParse<TensorElementType>(dataType, ignoreCase: true, out var type) && IsInteger(type);

    /// <summary>
    /// Float values as an input of <paramref name="type"/>: real types rounded to nearest; for an
    /// integer type each value must be a whole number within its range (a 400 naming the first that is not).
    /// </summary>
    public static NamedTensor ToInput(string name, TensorElementType type, long[] shape, float[] data)
    {
        if (type == TensorElementType.Float) return new NamedTensor(name, type, shape, data);
        var count = checked((int)Tensors.FloatTensor.ElementCount(shape));
        Array values = type switch
        {
            TensorElementType.Double => Convert(data, count, v => (double)v),
            TensorElementType.Float16 => Convert(data, count, (v, i) => HalfBits(name, i, v)),
            TensorElementType.BFloat16 => Convert(data, count, BFloat16Bits),
            TensorElementType.UInt8 => Whole(data, count, name, type, byte.MinValue, byte.MaxValue, v => (byte)v),
            TensorElementType.Int8 => Whole(data, count, name, type, sbyte.MinValue, sbyte.MaxValue, v => (sbyte)v),
            TensorElementType.UInt16 => Whole(data, count, name, type, ushort.MinValue, ushort.MaxValue, v => (ushort)v),
            TensorElementType.Int16 => Whole(data, count, name, type, short.MinValue, short.MaxValue, v => (short)v),
            // Past 2^24 a float32 holds only some whole numbers: those it holds are still exact.
            TensorElementType.UInt32 => Whole(data, count, name, type, uint.MinValue, uint.MaxValue, v => (uint)v),
            TensorElementType.Int32 => Whole(data, count, name, type, int.MinValue, int.MaxValue, v => (int)v),
            TensorElementType.UInt64 => Whole(data, count, name, type, ulong.MinValue, ulong.MaxValue, v => (ulong)v),
            TensorElementType.Int64 => Whole(data, count, name, type, long.MinValue, long.MaxValue, v => (long)v),
            _ => throw new UnsupportedModelException($"Input '{name}' holds {type}; predict and explain feed real or integer inputs."),
        };
        return new NamedTensor(name, type, shape, values);
    }

    /// <summary>
    /// A numeric tensor's elements as float32 (its own array where it is float32): a real-valued
    /// output to rank, or an integer input to explain (whole numbers past 2^24 rounded).
    /// </summary>
    public static float[] Of(NamedTensor tensor)
    {
        var count = checked((int)tensor.ElementCount);
        return tensor.Type switch
        {
            TensorElementType.Float => (float[])tensor.Data,
            TensorElementType.Double => Convert((double[])tensor.Data, count, v => (float)v),
            TensorElementType.Float16 => Convert((ushort[])tensor.Data, count, bits => (float)BitConverter.UInt16BitsToHalf(bits)),
            TensorElementType.BFloat16 => Convert((ushort[])tensor.Data, count, bits => BitConverter.Int32BitsToSingle(bits << 16)),
            TensorElementType.UInt8 => Convert((byte[])tensor.Data, count, v => (float)v),
            TensorElementType.Int8 => Convert((sbyte[])tensor.Data, count, v => (float)v),
            TensorElementType.UInt16 => Convert((ushort[])tensor.Data, count, v => (float)v),
            TensorElementType.Int16 => Convert((short[])tensor.Data, count, v => (float)v),
            TensorElementType.UInt32 => Convert((uint[])tensor.Data, count, v => (float)v),
            TensorElementType.Int32 => Convert((int[])tensor.Data, count, v => (float)v),
            TensorElementType.UInt64 => Convert((ulong[])tensor.Data, count, v => (float)v),
            TensorElementType.Int64 => Convert((long[])tensor.Data, count, v => (float)v),
            _ => throw new InvalidArgumentException($"'{tensor.Name}' holds {tensor.Type}, not numbers."),
        };
    }

    /// <summary>Rounds to the nearest float16; a value past its range is a 400 naming it.</summary>
    private static ushort HalfBits(string name, int index, float value)
    {
        var half = (Half)value;
        return Half.IsFinite(half)
            ? BitConverter.HalfToUInt16Bits(half)
            : throw new InvalidArgumentException($"Input '{name}' takes float16 values: element {index} ({value}) is beyond its range (±65504).");
    }

    /// <summary>Rounds to the nearest bfloat16, ties to even.</summary>
    public static ushort BFloat16Bits(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    private static TOut[] Convert<TIn, TOut>(TIn[] data, int count, Func<TIn, TOut> convert) => Convert(data, count, (v, _) => convert(v));

    private static TOut[] Convert<TIn, TOut>(TIn[] data, int count, Func<TIn, int, TOut> convert)
    {
        var values = new TOut[count];
        for (var i = 0; i < count; i++) values[i] = convert(data[i], i);
        return values;
    }

    private static T[] Whole<T>(float[] data, int count, string name, TensorElementType type, double min, double max, Func<float, T> convert)
    {
        var values = new T[count];
        for (var i = 0; i < count; i++)
        {
            var v = data[i];
            // max + 1: (double)long.MaxValue is 2^63 itself, which long cannot hold.
            if (!(v >= min && v < max + 1.0) || v != MathF.Round(v))
                throw new InvalidArgumentException(
                    $"Input '{name}' takes {type.ToString().ToLowerInvariant()} values: element {i} ({v}) is not a whole number within {min}–{max}.");
            values[i] = convert(v);
        }
        return values;
    }
}
