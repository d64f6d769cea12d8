using System.Numerics;
using System.Runtime.InteropServices;
using SaliencyService.Api.Errors;
using SaliencyService.Explain;

namespace SaliencyService.Api.Inference;

/// <summary>
/// A model that computes NaN or ±Inf for an input has no meaningful answer, and JSON cannot carry
/// one: a 422 naming what was not finite, instead of a 500 from the serializer or a blank map.
/// </summary>
public static class NonFinite
{
    /// <exception cref="ProblemException">422 when a value is NaN or infinite.</exception>
    public static void Check(Array values, string what)
    {
        if (IndexOf(values) is var i and >= 0)
            throw ProblemException.Unprocessable($"The model computed a non-finite value ({values.GetValue(i)}) in its {what} at flat index {i} for this input.");
    }

    /// <summary>The first NaN or ±Inf of a floating-point array; -1 when there is none, or the elements are not floating point.</summary>
    public static int IndexOf(Array values) => values switch
    {
        float[] f => FirstWithAllBits(MemoryMarshal.Cast<float, int>(f), 0x7F800000),
        double[] d => FirstWithAllBits(MemoryMarshal.Cast<double, long>(d), 0x7FF0000000000000),
        _ => -1,
    };

    /// <summary>
    /// The first value whose exponent bits are all set (NaN or ±Inf), a vector at a time: every
    /// uploaded tensor is checked, and a per-element delegate took 0.2 ms on a 224² image.
    /// </summary>
    private static int FirstWithAllBits<T>(ReadOnlySpan<T> bits, T exponent) where T : unmanaged, IBinaryInteger<T>
    {
        var mask = new Vector<T>(exponent);
        var i = 0;
        for (; i <= bits.Length - Vector<T>.Count; i += Vector<T>.Count)
            if (Vector.EqualsAny(new Vector<T>(bits[i..]) & mask, mask)) break;
        for (; i < bits.Length; i++)
            if ((bits[i] & exponent) == exponent) return i;
        return -1;
    }
}
