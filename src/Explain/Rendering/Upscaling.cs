using System.Buffers;
using System.Numerics;

namespace SaliencyService.Explain.Rendering;

/// <summary>
/// A map's picture stretched to a larger photo's size: bilinear, pixel centres aligned, as
/// ImageSharp's triangle filter upscales (each output a blend of the four nearest pixels, edges
/// repeated). ImageSharp converts every output pixel to four floats and back, 34–48 ms for a
/// 12-megapixel photo; here each source row is stretched once, and the rows are blended a vector
/// at a time.
/// </summary>
public static class Upscaling
{
    /// <param name="rgb">Rows of <paramref name="fromWidth"/> pixels, three bytes each.</param>
    /// <param name="width">At least <paramref name="fromWidth"/>.</param>
    /// <param name="height">At least <paramref name="fromHeight"/>.</param>
    public static byte[] Bilinear(ReadOnlySpan<byte> rgb, int fromWidth, int fromHeight, int width, int height)
    {
        if (width < fromWidth || height < fromHeight) throw new ArgumentException($"{fromWidth}×{fromHeight} to {width}×{height} is not an upscaling.");
        if (rgb.Length != checked(fromWidth * fromHeight * 3)) throw new ArgumentException("The pixels are not the size given.", nameof(rgb));
        var (columns, columnWeights) = Taps(fromWidth, width);
        var (rows, rowWeights) = Taps(fromHeight, height);
        var length = checked(width * 3);
        var stretched = ArrayPool<float>.Shared.Rent(checked(fromHeight * length));
        try
        {
            for (var y = 0; y < fromHeight; y++)
            {
                var source = rgb.Slice(y * fromWidth * 3, fromWidth * 3);
                var row = stretched.AsSpan(y * length, length);
                for (var x = 0; x < width; x++)
                {
                    int left = columns[x] * 3, right = Math.Min(columns[x] + 1, fromWidth - 1) * 3;
                    var w = columnWeights[x];
                    for (var c = 0; c < 3; c++) row[3 * x + c] = source[left + c] + w * (source[right + c] - source[left + c]);
                }
            }
            var pixels = new byte[checked(height * length)];
            for (var y = 0; y < height; y++)
            {
                int top = rows[y], bottom = Math.Min(rows[y] + 1, fromHeight - 1);
                Interpolate(stretched.AsSpan(top * length, length), stretched.AsSpan(bottom * length, length), rowWeights[y], pixels.AsSpan(y * length, length));
            }
            return pixels;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(stretched);
        }
    }

    /// <summary>For each of <paramref name="to"/> outputs, the source pixel left of (or above) its centre, and the weight of the next one.</summary>
    private static (int[] First, float[] Weight) Taps(int from, int to)
    {
        var (first, weight) = (new int[to], new float[to]);
        for (var i = 0; i < to; i++)
        {
            var centre = Math.Clamp((i + 0.5) * from / to - 0.5, 0, from - 1);
            first[i] = (int)centre;
            weight[i] = (float)(centre - first[i]);
        }
        return (first, weight);
    }

    /// <summary>output = round(top + w · (bottom − top)), a vector of bytes at a time.</summary>
    private static void Interpolate(ReadOnlySpan<float> top, ReadOnlySpan<float> bottom, float w, Span<byte> output)
    {
        var weight = new Vector<float>(w);
        var at = 0;
        for (; at + Vector<byte>.Count <= output.Length; at += Vector<byte>.Count)
        {
            var step = Vector<float>.Count;
            Vector.Narrow(
                Vector.Narrow(Level(top, bottom, at, weight), Level(top, bottom, at + step, weight)),
                Vector.Narrow(Level(top, bottom, at + 2 * step, weight), Level(top, bottom, at + 3 * step, weight))).CopyTo(output[at..]);
        }
        for (; at < output.Length; at++) output[at] = (byte)MathF.Round(top[at] + w * (bottom[at] - top[at]));
    }

    private static Vector<uint> Level(ReadOnlySpan<float> top, ReadOnlySpan<float> bottom, int at, Vector<float> weight)
    {
        var (t, b) = (new Vector<float>(top[at..]), new Vector<float>(bottom[at..]));
        return PixelBytes.Rounded(t + weight * (b - t));
    }
}
