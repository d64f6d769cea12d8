namespace SaliencyService.Explain.Attribution;

/// <summary>
/// What to explain and how. Parameters a method does not use are ignored by it; each method
/// declares the ones it reads (<see cref="AttributionMethod.Parameters"/>) and checks them.
/// </summary>
/// <param name="Target">Class index, label, or null for the top-1 of the pre-softmax score.</param>
/// <param name="Steps">Integrated gradients: Riemann midpoint steps from the zero baseline.</param>
/// <param name="Samples">SmoothGrad: noisy samples averaged.</param>
/// <param name="Noise">SmoothGrad: σ of the Gaussian noise as a fraction of the input's value range.</param>
/// <param name="Seed">SmoothGrad: RNG seed (null: a fresh random seed, reported back).</param>
/// <param name="Base">SmoothGrad: the method it smooths; null: gradient.</param>
/// <param name="Layer">Grad-CAM: the tensor whose activations are weighted; null: the default layer.</param>
public sealed record ExplainRequest(
    AttributionMethod Method,
    string? Target = null,
    int Steps = 50,
    int Samples = 25,
    double Noise = 0.15,
    int? Seed = null,
    AttributionMethod? Base = null,
    string? Layer = null)
{
    /// <summary>Refuses parameters out of range before any work (<see cref="InvalidArgumentException"/>).</summary>
    public void Validate() => Method.Validate(this);

    /// <summary>What identifies this request's map on one model and input; null when the map is random.</summary>
    public string? CacheKey() => Method.CacheKey(this);
}
