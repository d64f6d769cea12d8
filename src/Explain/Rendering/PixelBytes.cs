using System.Numerics;

namespace SaliencyService.Explain.Rendering;

/// <summary>The loops a picture's bytes come from, one pass each over a map's or an input's floats.</summary>
public static class PixelBytes
{
    /// <summary>
    /// <paramref name="target"/>[i · <paramref name="targetStep"/>] = round(clamp(<paramref name="source"/>[i ·
    /// <paramref name="sourceStep"/>] · <paramref name="scale"/> + <paramref name="offset"/>, 0, 255)) for i &lt;
    /// <paramref name="count"/>: one plane of a picture into its interleaved RGB bytes. NaN becomes 0.
    /// </summary>
    public static void Affine(ReadOnlySpan<float> source, int sourceStep, float scale, float offset, Span<byte> target, int targetStep, int count)
    {
        for (int i = 0, s = 0, t = 0; i < count; i++, s += sourceStep, t += targetStep)
            target[t] = (byte)MathF.Round(Math.Clamp(source[s] * scale + offset, 0f, 255f));
    }

    /// <summary>
    /// <paramref name="heat"/>[i] = round(alpha · heat[i] + (1 − alpha) · picture[i]) in float, ties to
    /// even: an overlay, a vector of bytes at a time (a photo's overlay is tens of millions).
    /// </summary>
    public static void Blend(Span<byte> heat, ReadOnlySpan<byte> picture, float alpha)
    {
        if (picture.Length != heat.Length) throw new ArgumentException("The picture and the heatmap differ in size.", nameof(picture));
        var (a, b) = (new Vector<float>(alpha), new Vector<float>(1 - alpha));
        var at = 0;
        for (; at + Vector<byte>.Count <= heat.Length; at += Vector<byte>.Count)
        {
            Vector.Widen(new Vector<byte>(heat[at..]), out var heatLow, out var heatHigh);
            Vector.Widen(new Vector<byte>(picture[at..]), out var pictureLow, out var pictureHigh);
            Vector.Narrow(Blend(heatLow, pictureLow, a, b), Blend(heatHigh, pictureHigh, a, b)).CopyTo(heat[at..]);
        }
        for (; at < heat.Length; at++) heat[at] = (byte)MathF.Round(alpha * heat[at] + (1 - alpha) * picture[at]);
    }

    private static Vector<ushort> Blend(Vector<ushort> heat, Vector<ushort> picture, Vector<float> a, Vector<float> b)
    {
        Vector.Widen(heat, out var heatLow, out var heatHigh);
        Vector.Widen(picture, out var pictureLow, out var pictureHigh);
        return Vector.Narrow(Mix(heatLow, pictureLow, a, b), Mix(heatHigh, pictureHigh, a, b));
    }

    private static Vector<uint> Mix(Vector<uint> heat, Vector<uint> picture, Vector<float> a, Vector<float> b) =>
        Rounded(a * Vector.ConvertToSingle(Vector.AsVectorInt32(heat)) + b * Vector.ConvertToSingle(Vector.AsVectorInt32(picture)));

    /// <summary>Levels in [0, 255] rounded (ties to even) to whole numbers, ready to narrow to bytes.</summary>
    internal static Vector<uint> Rounded(Vector<float> levels) => Vector.AsVectorUInt32(Vector.ConvertToInt32(Vector.Round(levels)));

    /// <summary>The mean and the standard deviation (of the population) of <paramref name="values"/>, summed in double.</summary>
    public static (double Mean, double Deviation) MeanAndDeviation(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return (0, 0);
        var mean = Sum(values, 0, squares: false) / values.Length;
        return (mean, Math.Sqrt(Sum(values, mean, squares: true) / values.Length));
    }

    /// <summary>Σ v, or Σ (v − <paramref name="centre"/>)², in double, several sums at once.</summary>
    private static double Sum(ReadOnlySpan<float> values, double centre, bool squares)
    {
        var (low, high, at) = (Vector<double>.Zero, Vector<double>.Zero, 0);
        var middle = new Vector<double>(centre);
        for (; at + Vector<float>.Count <= values.Length; at += Vector<float>.Count)
        {
            Vector.Widen(new Vector<float>(values[at..]), out var a, out var b);
            if (squares) { a -= middle; b -= middle; a *= a; b *= b; }
            (low, high) = (low + a, high + b);
        }
        var sum = Vector.Sum(low + high);
        for (; at < values.Length; at++) sum += squares ? (values[at] - centre) * (values[at] - centre) : values[at];
        return sum;
    }
}
