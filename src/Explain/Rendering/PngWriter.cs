using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Numerics;
using System.Runtime.InteropServices;

namespace SaliencyService.Explain.Rendering;

/// <summary>
/// Writes 8-bit RGB pixels as a PNG (ISO/IEC 15948). ImageSharp 2's encoder deflates with its own
/// managed compressor: 8–20 ms for a 224×224 map, most of a PNG answer's time beyond the map
/// (bench/analysis.md). Here the runtime's zlib compresses, each row filtered as PNG encoders do by
/// default: the filter (None, Sub, Up or Paeth) whose bytes sum to the least magnitude.
/// </summary>
public static class PngWriter
{
    /// <summary>
    /// zlib's run-length strategy (matches one pixel's bytes back only): on 224×224 maps and a
    /// 512×512 photo, as small as ImageSharp's default PNG or smaller, in a third of the time of
    /// zlib's own default (bench/analysis.md).
    /// </summary>
    private static ZLibCompressionOptions Compression => new() { CompressionLevel = 6, CompressionStrategy = ZLibCompressionStrategy.RunLengthEncoding };

    /// <summary>
    /// Fewer filtered bytes are deflated in one piece: below this a second thread's start costs
    /// about what it saves (zlib takes ~4 ns a byte here).
    /// </summary>
    private const int ParallelBytes = 1 << 16;

    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <param name="rgb">Rows of <paramref name="width"/> pixels, top to bottom, three bytes each.</param>
    public static byte[] Encode(ReadOnlyMemory<byte> rgb, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        var stride = checked(width * 3);
        if (rgb.Length != checked(stride * height)) throw new ArgumentException($"{width}×{height} RGB pixels are {stride * height} bytes, not {rgb.Length}", nameof(rgb));

        var length = checked((stride + 1) * height);
        var filtered = ArrayPool<byte>.Shared.Rent(length);
        Deflated? top = null, bottom = null;
        try
        {
            // pigz's way: the two halves filtered and deflated on two threads, the first ended by a
            // sync flush (a byte-aligned, non-final block), so that the second's blocks follow it as one stream.
            var half = length >= ParallelBytes ? height / 2 : height;
            Deflated Piece(int first, int end)
            {
                var rows = new Rows(stride);
                for (var y = first; y < end; y++)
                    rows.Filter(rgb.Span.Slice(y * stride, stride), y == 0 ? default : rgb.Span.Slice((y - 1) * stride, stride), filtered.AsSpan(y * (stride + 1), stride + 1));
                return Deflated.From(filtered.AsSpan(first * (stride + 1), (end - first) * (stride + 1)), last: end == height);
            }
            Parallel.Invoke(() => top = Piece(0, half), () => bottom = half == height ? null : Piece(half, height));
            var adler = Adler32.HashToUInt32(filtered.AsSpan(0, length));
            return Assemble(width, height, top!.Bytes, bottom is null ? [] : bottom.Bytes, adler);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(filtered);
            top?.Dispose();
            bottom?.Dispose();
        }
    }

    /// <summary>Signature, header, one IDAT chunk of the zlib stream (header, the deflated pieces, Adler-32) and the end.</summary>
    private static byte[] Assemble(int width, int height, ReadOnlySpan<byte> top, ReadOnlySpan<byte> bottom, uint adler)
    {
        ReadOnlySpan<byte> zlibHeader = [0x78, 0x01]; // deflate, 32 KiB window, no dictionary (its check bits: 0x7801 % 31 == 0)
        var length = zlibHeader.Length + top.Length + bottom.Length + 4;
        var png = new byte[Signature.Length + (12 + 13) + (12 + length) + 12];
        Signature.CopyTo(png);
        var at = Signature.Length;

        var header = png.AsSpan(at + 8, 13);
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8; // bits per channel
        header[9] = 2; // truecolour; compression, filter and interlace methods 0
        Chunk(png, ref at, "IHDR"u8, header.Length);

        var data = png.AsSpan(at + 8, length);
        zlibHeader.CopyTo(data);
        top.CopyTo(data[zlibHeader.Length..]);
        bottom.CopyTo(data[(zlibHeader.Length + top.Length)..]);
        BinaryPrimitives.WriteUInt32BigEndian(data[^4..], adler);
        Chunk(png, ref at, "IDAT"u8, length);

        Chunk(png, ref at, "IEND"u8, 0);
        return png;
    }

    /// <summary>Writes a chunk's length, type and CRC around its data, already in place after them.</summary>
    private static void Chunk(byte[] png, ref int at, ReadOnlySpan<byte> type, int length)
    {
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(at), length);
        type.CopyTo(png.AsSpan(at + 4));
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(at + 8 + length), Crc32.HashToUInt32(png.AsSpan(at + 4, 4 + length)));
        at += 12 + length;
    }

    /// <summary>A piece of the stream, raw deflate in a pooled buffer.</summary>
    private sealed class Deflated : IDisposable
    {
        private byte[] _buffer = [];
        private int _length;

        public ReadOnlySpan<byte> Bytes => _buffer.AsSpan(0, _length);

        /// <param name="last">Whether the piece ends the stream (a final block); else it ends with a sync flush.</param>
        public static Deflated From(ReadOnlySpan<byte> bytes, bool last)
        {
            // zlib's deflateBound for these settings, and the sync flush's empty stored block.
            var piece = new Deflated { _buffer = ArrayPool<byte>.Shared.Rent(bytes.Length + (bytes.Length >> 12) + (bytes.Length >> 14) + 64) };
            using var output = new MemoryStream(piece._buffer, 0, piece._buffer.Length, writable: true, publiclyVisible: true);
            using (var deflate = new DeflateStream(output, Compression, leaveOpen: true))
            {
                deflate.Write(bytes);
                if (!last)
                {
                    deflate.Flush();
                    piece._length = (int)output.Position; // before disposing writes a final block
                    return piece;
                }
            }
            piece._length = (int)output.Position;
            return piece;
        }

        public void Dispose() => ArrayPool<byte>.Shared.Return(Interlocked.Exchange(ref _buffer, []));
    }

    /// <summary>A row's candidates under the filters None, Sub, Up and Paeth, each led by its filter's type byte.</summary>
    private sealed class Rows(int stride)
    {
        private readonly byte[][] _candidates = [.. new byte[] { 0, 1, 2, 4 }.Select(type => { var row = new byte[stride + 1]; row[0] = type; return row; })];
        private readonly byte[] _zeros = new byte[stride];

        /// <summary>Writes the row filtered the way whose bytes, as signed values, sum to the least magnitude.</summary>
        /// <param name="above">The previous row (empty for the first: all zero).</param>
        public void Filter(ReadOnlySpan<byte> row, ReadOnlySpan<byte> above, Span<byte> output)
        {
            if (above.IsEmpty) above = _zeros;
            Span<byte> sub = _candidates[1].AsSpan(1), up = _candidates[2].AsSpan(1), paeth = _candidates[3].AsSpan(1);
            row.CopyTo(_candidates[0].AsSpan(1));
            var i = 0;
            for (; i < 3; i++) // no pixel to the left: Sub keeps the byte, Paeth of (0, up, 0) is up
            {
                sub[i] = row[i];
                up[i] = paeth[i] = (byte)(row[i] - above[i]);
            }
            for (; i + Vector<byte>.Count <= row.Length; i += Vector<byte>.Count)
            {
                var (x, left, over, overLeft) = (new Vector<byte>(row[i..]), new Vector<byte>(row[(i - 3)..]), new Vector<byte>(above[i..]), new Vector<byte>(above[(i - 3)..]));
                (x - left).CopyTo(sub[i..]);
                (x - over).CopyTo(up[i..]);
                Vector.Widen(left, out var leftLow, out var leftHigh);
                Vector.Widen(over, out var overLow, out var overHigh);
                Vector.Widen(overLeft, out var overLeftLow, out var overLeftHigh);
                var predicted = Vector.Narrow(Paeth(leftLow, overLow, overLeftLow), Paeth(leftHigh, overHigh, overLeftHigh));
                (x - predicted).CopyTo(paeth[i..]);
            }
            for (; i < row.Length; i++)
            {
                int left = row[i - 3], over = above[i], overLeft = above[i - 3];
                sub[i] = (byte)(row[i] - left);
                up[i] = (byte)(row[i] - over);
                paeth[i] = (byte)(row[i] - Paeth(left, over, overLeft));
            }
            var best = 0;
            var bestCost = long.MaxValue;
            for (var filter = 0; filter < _candidates.Length; filter++)
            {
                var cost = Cost(_candidates[filter].AsSpan(1));
                if (cost < bestCost) (best, bestCost) = (filter, cost);
            }
            _candidates[best].CopyTo(output);
        }

        /// <summary>Σ |b| over the bytes read as signed values.</summary>
        private static long Cost(ReadOnlySpan<byte> filtered)
        {
            var sums = Vector<int>.Zero;
            var i = 0;
            for (; i + Vector<sbyte>.Count <= filtered.Length; i += Vector<sbyte>.Count)
            {
                Vector.Widen(new Vector<sbyte>(MemoryMarshal.Cast<byte, sbyte>(filtered[i..])), out var low, out var high);
                Vector.Widen(Vector.Abs(low) + Vector.Abs(high), out var a, out var b);
                sums += a + b;
            }
            long cost = Vector.Sum(sums);
            for (; i < filtered.Length; i++) cost += Math.Abs((int)(sbyte)filtered[i]);
            return cost;
        }

        /// <summary>PNG's Paeth predictor: of left, up and up-left, the nearest to left + up − up-left (ties in that order).</summary>
        private static Vector<ushort> Paeth(Vector<ushort> left, Vector<ushort> up, Vector<ushort> upLeft)
        {
            var (a, b, c) = (Vector.AsVectorInt16(left), Vector.AsVectorInt16(up), Vector.AsVectorInt16(upLeft));
            var (toLeft, toUp, toUpLeft) = (Vector.Abs(b - c), Vector.Abs(a - c), Vector.Abs(a + b - c - c));
            var nearUp = Vector.ConditionalSelect(Vector.LessThanOrEqual(toUp, toUpLeft), b, c);
            var nearest = Vector.ConditionalSelect(Vector.LessThanOrEqual(toLeft, toUp) & Vector.LessThanOrEqual(toLeft, toUpLeft), a, nearUp);
            return Vector.AsVectorUInt16(nearest);
        }

        private static int Paeth(int left, int up, int upLeft)
        {
            var estimate = left + up - upLeft;
            var (toLeft, toUp, toUpLeft) = (Math.Abs(estimate - left), Math.Abs(estimate - up), Math.Abs(estimate - upLeft));
            return toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
        }
    }
}
