using System.Buffers;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// An ONNX model's protobuf bytes split in two: the model without its initializers' <c>raw_data</c>
/// (the graph: small, parsed as usual), and where each initializer's <c>raw_data</c> lies in the
/// original bytes (the weights: most of the file, then wrapped in place, not copied). Parsing a
/// 46 MB model copied its weights into fresh managed arrays, and faulting those pages in was most of
/// the parse (~20k faults, ~0.2 s on a host where a fresh page costs 11 µs).
/// Only the path ModelProto.graph → GraphProto.initializer → TensorProto.raw_data is split; every
/// other field is copied as it is. Bytes that are not well-formed protobuf give null, and the
/// caller parses them whole, so the protobuf library reports what is wrong.
/// </summary>
internal static class RawDataSplit
{
    private const int ModelGraph = 7;
    private const int GraphInitializer = 5;
    private const int TensorRawData = 9;
    private const int LengthDelimited = 2;

    /// <param name="Model">The model without its initializers' raw data.</param>
    /// <param name="RawData">Per initializer, in file order: where its raw data lies, or null (it had none).</param>
    public sealed record Parts(byte[] Model, IReadOnlyList<Range?> RawData);

    public static Parts? Split(ReadOnlySpan<byte> model)
    {
        var rawData = new List<Range?>();
        return Rewrite(model, Range.All, [ModelGraph, GraphInitializer], rawData) is { } stripped ? new Parts(stripped, rawData) : null;
    }

    /// <summary>
    /// The message's fields copied, those on <paramref name="path"/> (length-delimited) rewritten
    /// one level down; at the path's end, a tensor without its raw data. Null if not well-formed.
    /// </summary>
    private static byte[]? Rewrite(ReadOnlySpan<byte> bytes, Range message, ReadOnlySpan<int> path, List<Range?> rawData)
    {
        if (path.IsEmpty) return Tensor(bytes, message, rawData);
        var output = new ArrayBufferWriter<byte>();
        var fields = new FieldReader(bytes, message);
        while (fields.Next(out var field))
        {
            if (field.Number == path[0] && field.WireType == LengthDelimited)
            {
                if (Rewrite(bytes, field.Payload, path[1..], rawData) is not { } inner) return null;
                WriteLengthDelimited(output, path[0], inner);
            }
            else output.Write(bytes[field.Whole]);
        }
        return fields.Failed ? null : output.WrittenSpan.ToArray();
    }

    private static byte[]? Tensor(ReadOnlySpan<byte> bytes, Range tensor, List<Range?> rawData)
    {
        var output = new ArrayBufferWriter<byte>();
        Range? raw = null;
        var fields = new FieldReader(bytes, tensor);
        while (fields.Next(out var field))
        {
            // As protobuf merges a repeated scalar field: the last one counts.
            if (field.Number == TensorRawData && field.WireType == LengthDelimited) raw = field.Payload;
            else output.Write(bytes[field.Whole]);
        }
        rawData.Add(raw);
        return fields.Failed ? null : output.WrittenSpan.ToArray();
    }

    private static void WriteLengthDelimited(ArrayBufferWriter<byte> output, int number, byte[] payload)
    {
        WriteVarint(output, (ulong)(number << 3 | LengthDelimited));
        WriteVarint(output, (ulong)payload.Length);
        output.Write(payload);
    }

    private static void WriteVarint(ArrayBufferWriter<byte> output, ulong value)
    {
        var span = output.GetSpan(10);
        var i = 0;
        for (; value >= 0x80; value >>= 7) span[i++] = (byte)(value | 0x80);
        span[i++] = (byte)value;
        output.Advance(i);
    }

    /// <summary>One field: its number, wire type, all its bytes (tag included) and, length-delimited, its payload.</summary>
    private readonly record struct Field(int Number, int WireType, Range Whole, Range Payload);

    /// <summary>The fields of one message, in order, bounds-checked against the message's end.</summary>
    private ref struct FieldReader
    {
        private readonly ReadOnlySpan<byte> _bytes;
        private readonly int _end;
        private int _position;

        public FieldReader(ReadOnlySpan<byte> bytes, Range message)
        {
            var (start, length) = message.GetOffsetAndLength(bytes.Length);
            _bytes = bytes;
            _position = start;
            _end = start + length;
        }

        /// <summary>Whether the message was not well-formed (then <see cref="Next"/> stopped early).</summary>
        public bool Failed { get; private set; }

        public bool Next(out Field field)
        {
            field = default;
            if (_position >= _end || Failed) return false;
            var start = _position;
            if (!Varint(out var tag) || tag >> 3 is 0 or > int.MaxValue) return Fail();
            var payloadStart = _position;
            ulong length;
            switch ((int)(tag & 7))
            {
                case 0:
                    if (!Varint(out _)) return Fail();
                    break;
                case 1:
                    length = 8;
                    if (!Skip(length)) return Fail();
                    break;
                case LengthDelimited:
                    if (!Varint(out length)) return Fail();
                    payloadStart = _position;
                    if (!Skip(length)) return Fail();
                    break;
                case 5:
                    if (!Skip(4)) return Fail();
                    break;
                default: // groups (not in ONNX) and invalid wire types
                    return Fail();
            }
            field = new Field((int)(tag >> 3), (int)(tag & 7), start.._position, payloadStart.._position);
            return true;
        }

        private bool Varint(out ulong value)
        {
            value = 0;
            for (var shift = 0; shift < 64 && _position < _end; shift += 7)
            {
                var b = _bytes[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return true;
            }
            return false;
        }

        private bool Skip(ulong length)
        {
            if (length > (ulong)(_end - _position)) return false;
            _position += (int)length;
            return true;
        }

        private bool Fail()
        {
            Failed = true;
            return false;
        }
    }
}
