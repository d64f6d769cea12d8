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
        float[] f => Array.FindIndex(f, v => !float.IsFinite(v)),
        double[] d => Array.FindIndex(d, v => !double.IsFinite(v)),
        _ => -1,
    };
}
