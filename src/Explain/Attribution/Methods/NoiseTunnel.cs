using SaliencyService.Explain.Rendering;
using SaliencyService.Explain.Torch;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution.Methods;

/// <summary>
/// SmoothGrad as Captum's NoiseTunnel: the mean of any other method's maps over noisy copies of the
/// input (x + N(0, σ²), σ = noise × the input's value range). The noise comes from libtorch's CPU
/// generator seeded with the request's seed (PyTorch's noise for that seed), so a seed reproduces a
/// map; without one the map is random and not cached.
/// </summary>
public sealed class NoiseTunnel : AttributionMethod
{
    public const int MaxSamples = 512;

    private static readonly MethodParameter[] Own =
    [
        new("samples", r => r.Samples), new("noise", r => r.Noise), new("seed", r => r.Seed), new("base", r => BaseOf(r).Name),
    ];

    public override string Name => "smoothgrad";
    public override int Order => 5;
    public override RenderOptions RenderDefaults => RenderOptions.Heatmap;
    public override IReadOnlyList<MethodParameter> Parameters => Own;

    /// <summary>The methods it can smooth: every other one.</summary>
    public static IEnumerable<string> BaseNames => AttributionMethods.All.Where(m => m is not NoiseTunnel).Select(m => m.Name);

    /// <summary>The method smoothed: the request's base, gradient by default.</summary>
    public static AttributionMethod BaseOf(ExplainRequest request) => request.Base ?? AttributionMethods.Get(Gradient.MethodName);

    public override void Validate(ExplainRequest request)
    {
        if (request.Samples is < 1 or > MaxSamples) throw new InvalidArgumentException($"samples must be 1–{MaxSamples}.");
        if (request.Noise is < 0 or > 10 || double.IsNaN(request.Noise)) throw new InvalidArgumentException("noise must be between 0 and 10.");
        var baseMethod = BaseOf(request);
        if (baseMethod is NoiseTunnel) throw new InvalidArgumentException("smoothgrad smooths another method, not itself.");
        baseMethod.Validate(request);
    }

    /// <summary>Random without a seed; with one, the base's key (its own parameters) is part of it.</summary>
    public override string? CacheKey(ExplainRequest request) =>
        request.Seed is null || BaseOf(request).CacheKey(request) is not { } baseKey ? null : base.CacheKey(request) + "|" + baseKey;

    public override Attributions Attribute(ExplainContext context, Tensor inputs)
    {
        var request = context.Request;
        var baseMethod = BaseOf(request);
        var usedSeed = request.Seed ?? Random.Shared.Next();
        using var generator = new Generator(unchecked((ulong)usedSeed));
        IReadOnlyDictionary<string, object> baseParameters = new Dictionary<string, object>();
        var maps = new List<Tensor>();
        foreach (var x in ExplainContext.Samples(inputs))
        {
            var sigma = request.Noise * (x.max().item<float>() - x.min().item<float>());
            // The noisy samples' maps are averaged a chunk at a time: the request holds one chunk of
            // them (512 samples of a 1024² input would be 6 GB of noise at once).
            var chunk = NoiseChunk(context.MaxBatch, x.NumberOfElements, request.Samples);
            var mean = new SampleMean();
            for (var start = 0; start < request.Samples; start += chunk)
            {
                using var scope = NewDisposeScope();
                var count = Math.Min(chunk, request.Samples - start);
                var smoothed = baseMethod.SummedAttribute(context, NoisyCopies(x, count, sigma, generator));
                baseParameters = smoothed.Parameters;
                mean.AddSum(smoothed.Maps, count);
            }
            maps.Add(mean.Value);
        }
        var parameters = new Dictionary<string, object>(baseParameters)
        {
            ["samples"] = request.Samples, ["noise"] = request.Noise, ["seed"] = usedSeed, ["base"] = baseMethod.Name,
        };
        return new(cat(maps, 0), parameters);
    }

    /// <summary>
    /// Samples drawn at a time: a multiple of 16 at least a batch. PyTorch's <c>normal_</c> fills 16
    /// values at a time and redraws the last 16 of a fill whose size is not a multiple of 16, so
    /// fills of 16·k samples each (and a last one of 16 values or more) draw what one fill of all the
    /// samples would. Samples of fewer than 16 values are drawn in one fill.
    /// </summary>
    private static int NoiseChunk(int maxBatch, long valuesPerSample, int samples) =>
        valuesPerSample < 16 ? samples : (maxBatch + 15) / 16 * 16;

    /// <summary>
    /// <paramref name="count"/> copies of the sample <paramref name="x"/> ([1, ...]) plus N(0, σ²)
    /// noise: libtorch's CPU generator, the stream PyTorch draws with
    /// <c>torch.Generator().manual_seed(seed)</c>, written straight into the batch (one tensor, no
    /// managed copy: ~11 ms for 25 samples of 224², against ~120 ms for Box–Muller in .NET and its copy).
    /// </summary>
    public static Tensor NoisyCopies(Tensor x, int count, double sigma, Generator generator) =>
        empty([count, .. x.shape[1..]], x.dtype).normal_(0, sigma, generator).add_(x, Scalars.One);
}
