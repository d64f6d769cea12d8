using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// The mean of a base method's maps over noisy copies of the input (x + N(0, σ²), σ = noise × the
/// input's value range), like Captum's NoiseTunnel wrapping another method. The noise comes from
/// a seeded .NET generator, so a seed reproduces a map exactly.
/// </summary>
public static class SmoothGrad
{
    public const int MaxSamples = 512;

    private static readonly AttributionMethod[] Bases =
        [AttributionMethod.Gradient, AttributionMethod.GuidedBackprop, AttributionMethod.Deconvnet, AttributionMethod.InputXGradient];

    public static AttributionMap Attribute(ExplainContext context, int samples, double noise, int? seed, AttributionMethod baseMethod)
    {
        if (samples is < 1 or > MaxSamples) throw ProblemException.BadRequest($"samples must be 1–{MaxSamples}.");
        if (noise is < 0 or > 10 || double.IsNaN(noise)) throw ProblemException.BadRequest("noise must be between 0 and 10.");
        if (!Bases.Contains(baseMethod))
            throw ProblemException.BadRequest($"smoothgrad wraps one of: {string.Join(", ", Bases.Select(b => b.Name()))}.");

        var usedSeed = seed ?? Random.Shared.Next();
        var x = context.Input;
        var sigma = noise * (x.max().item<float>() - x.min().item<float>());
        var random = new Random(usedSeed);
        var perSample = x.NumberOfElements;
        var gaussian = new float[samples * perSample];
        for (var i = 0; i < gaussian.Length; i++) gaussian[i] = (float)(sigma * Normal(random));

        var noisy = x + tensor(gaussian).reshape([samples, .. x.shape[1..]]);
        var gradients = context.Gradients(noisy, GradientAttribution.Rule(baseMethod));
        var maps = baseMethod == AttributionMethod.InputXGradient ? noisy * gradients : gradients;
        return context.Result(AttributionMethod.SmoothGrad, maps.mean([0]),
            new Dictionary<string, object> { ["samples"] = samples, ["noise"] = noise, ["seed"] = usedSeed, ["base"] = baseMethod.Name() });
    }

    /// <summary>A standard normal draw (Box–Muller).</summary>
    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
