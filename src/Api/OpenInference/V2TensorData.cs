using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference;

/// <summary>Tensor elements in the protocol's JSON <c>data</c>: flat or nested row-major, numbers or booleans.</summary>
public static class V2TensorData
{
    /// <summary>The elements of <paramref name="data"/> as the type's array; a wrong count or value is an <see cref="InvalidArgumentException"/>.</summary>
    public static Array Read(JsonElement data, TensorElementType type, long count, string input)
    {
        if (data.ValueKind != JsonValueKind.Array) throw new InvalidArgumentException($"Input '{input}': 'data' must be an array.");
        var values = NamedTensor.Allocate(type, count);
        long written = 0;
        Fill(data, values, type, ref written, count, input);
        if (written != count) throw new InvalidArgumentException($"Input '{input}' has {written} elements in 'data'; its shape holds {count}.");
        return values;
    }

    /// <summary>
    /// The elements as the binary extension and gRPC's raw contents carry them: little-endian values,
    /// or for BYTES each element's length (4 bytes, little-endian) and then its UTF-8 bytes.
    /// </summary>
    public static ReadOnlySpan<byte> Raw(NamedTensor tensor)
    {
        if (tensor.Type != TensorElementType.String) return tensor.Bytes;
        var strings = ((string[])tensor.Data).Select(System.Text.Encoding.UTF8.GetBytes).ToArray();
        var raw = new byte[strings.Sum(s => 4 + s.Length)];
        var offset = 0;
        foreach (var s in strings)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(offset), s.Length);
            s.CopyTo(raw, offset + 4);
            offset += 4 + s.Length;
        }
        return raw;
    }

    /// <summary>The elements as JSON writes them: numbers (float16 and bfloat16 widened to float), booleans or strings.</summary>
    public static Array Writable(NamedTensor tensor) => tensor.Type switch
    {
        TensorElementType.Bool => ((byte[])tensor.Data).Select(b => b != 0).ToArray(),
        TensorElementType.Float16 or TensorElementType.BFloat16 => FloatElements.Of(tensor),
        _ => tensor.Data,
    };

    private static void Fill(JsonElement array, Array values, TensorElementType type, ref long written, long count, string input)
    {
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.Array)
            {
                Fill(item, values, type, ref written, count, input);
                continue;
            }
            if (written >= count) throw new InvalidArgumentException($"Input '{input}' has more elements in 'data' than its shape holds ({count}).");
            Set(values, written++, item, type, input);
        }
    }

    private static void Set(Array values, long index, JsonElement item, TensorElementType type, string input)
    {
        var ok = type switch
        {
            TensorElementType.Bool => item.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? Store(values, index, (byte)(item.GetBoolean() ? 1 : 0))
                : false,
            TensorElementType.Float => item.ValueKind == JsonValueKind.Number && item.TryGetSingle(out var f) && float.IsFinite(f) && Store(values, index, f),
            TensorElementType.Double => item.ValueKind == JsonValueKind.Number && item.TryGetDouble(out var d) && double.IsFinite(d) && Store(values, index, d),
            TensorElementType.Float16 => item.ValueKind == JsonValueKind.Number && item.TryGetDouble(out var h) && Half.IsFinite((Half)h)
                                         && Store(values, index, BitConverter.HalfToUInt16Bits((Half)h)),
            TensorElementType.BFloat16 => item.ValueKind == JsonValueKind.Number && item.TryGetSingle(out var b) && float.IsFinite(b)
                                          && Store(values, index, FloatElements.BFloat16Bits(b)),
            TensorElementType.Int8 => item.ValueKind == JsonValueKind.Number && item.TryGetSByte(out var i8) && Store(values, index, i8),
            TensorElementType.Int16 => item.ValueKind == JsonValueKind.Number && item.TryGetInt16(out var i16) && Store(values, index, i16),
            TensorElementType.Int32 => item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out var i32) && Store(values, index, i32),
            TensorElementType.Int64 => item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out var i64) && Store(values, index, i64),
            TensorElementType.UInt8 => item.ValueKind == JsonValueKind.Number && item.TryGetByte(out var u8) && Store(values, index, u8),
            TensorElementType.UInt16 => item.ValueKind == JsonValueKind.Number && item.TryGetUInt16(out var u16) && Store(values, index, u16),
            TensorElementType.UInt32 => item.ValueKind == JsonValueKind.Number && item.TryGetUInt32(out var u32) && Store(values, index, u32),
            TensorElementType.UInt64 => item.ValueKind == JsonValueKind.Number && item.TryGetUInt64(out var u64) && Store(values, index, u64),
            _ => false,
        };
        if (!ok)
            throw new InvalidArgumentException(
                $"Input '{input}' element {index} ({item.GetRawText()}) is not a finite {V2DataTypes.Name(type)} value.");
    }

    private static bool Store<T>(Array values, long index, T value)
    {
        ((T[])values)[index] = value;
        return true;
    }
}
