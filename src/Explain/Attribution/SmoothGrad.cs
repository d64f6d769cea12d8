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
        FillNormal(gaussian, sigma, random);

        var noisy = x + tensor(gaussian).reshape([samples, .. x.shape[1..]]);
        var gradients = context.Gradients(noisy, GradientAttribution.Rule(baseMethod));
        var maps = baseMethod == AttributionMethod.InputXGradient ? noisy * gradients : gradients;
        return context.Result(AttributionMethod.SmoothGrad, maps.mean([0]),
            new Dictionary<string, object> { ["samples"] = samples, ["noise"] = noise, ["seed"] = usedSeed, ["base"] = baseMethod.Name() });
    }

    /// <summary>N(0, σ²) draws by Box–Muller, both of each pair's values used (millions per request: half the work).</summary>
    private static void FillNormal(float[] values, double sigma, Random random)
    {
        for (var i = 0; i < values.Length; i += 2)
        {
            var radius = sigma * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble()));
            var (sin, cos) = Math.SinCos(2 * Math.PI * random.NextDouble());
            values[i] = (float)(radius * cos);
            if (i + 1 < values.Length) values[i + 1] = (float)(radius * sin);
        }
    }
}
