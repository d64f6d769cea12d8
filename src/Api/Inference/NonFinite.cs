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
    public static void Check(ReadOnlySpan<float> values, string what)
    {
        for (var i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw ProblemException.Unprocessable($"The model computed a non-finite value ({values[i]}) in its {what} at flat index {i} for this input.");
    }
}
