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

    private static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <param name="rgb">Rows of <paramref name="width"/> pixels, top to bottom, three bytes each.</param>
    public static byte[] Encode(ReadOnlySpan<byte> rgb, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        var stride = checked(width * 3);
        if (rgb.Length != checked(stride * height)) throw new ArgumentException($"{width}×{height} RGB pixels are {stride * height} bytes, not {rgb.Length}", nameof(rgb));

        var filtered = ArrayPool<byte>.Shared.Rent(checked((stride + 1) * height));
        using var data = new MemoryStream();
        try
        {
            var rows = new Rows(stride);
            for (var y = 0; y < height; y++)
                rows.Filter(rgb.Slice(y * stride, stride), y == 0 ? default : rgb.Slice((y - 1) * stride, stride), filtered.AsSpan(y * (stride + 1), stride + 1));
            using (var deflate = new ZLibStream(data, Compression, leaveOpen: true))
                deflate.Write(filtered, 0, (stride + 1) * height);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(filtered);
        }

        using var png = new MemoryStream((int)data.Length + 64);
        png.Write(Signature);
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8; // bits per channel
        header[9] = 2; // truecolour; compression, filter and interlace methods 0
        WriteChunk(png, "IHDR"u8, header);
        WriteChunk(png, "IDAT"u8, data.GetBuffer().AsSpan(0, (int)data.Length));
        WriteChunk(png, "IEND"u8, []);
        return png.ToArray();
    }

    private static void WriteChunk(Stream png, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        png.Write(type);
        png.Write(data);
        var crc = new Crc32();
        crc.Append(type);
        crc.Append(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc.GetCurrentHashAsUInt32());
        png.Write(word);
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
