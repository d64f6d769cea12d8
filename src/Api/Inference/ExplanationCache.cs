using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.Inference;

/// <summary>
/// Recently computed attribution maps, keyed by the model's SHA-256, the input's SHA-256, the
/// method and its parameters, bounded by <c>Saliency:Explain:CacheMegabytes</c> (least recently
/// used first out). Rendering is per request, so one map serves every format and view. Each method
/// says what identifies its map (<see cref="ExplainRequest.CacheKey"/>); random ones (SmoothGrad
/// without a seed) are never cached.
/// </summary>
public sealed class ExplanationCache(IOptions<SaliencyOptions> options) : IDisposable
{
    private readonly long _capacity = Math.Max(0, options.Value.Explain.CacheMegabytes) * 1024L * 1024;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions
    {
        SizeLimit = Math.Max(1, Math.Max(0, options.Value.Explain.CacheMegabytes) * 1024L * 1024),
        CompactionPercentage = 0.25,
    });

    /// <summary>The key of a request, or null when it must not be cached.</summary>
    public string? Key(string modelSha256, FloatTensor input, ExplainRequest request)
    {
        if (_capacity == 0 || request.CacheKey() is not { } requestKey) return null;
        var inputHash = Convert.ToHexStringLower(SHA256.HashData(MemoryMarshal.AsBytes(input.Data.AsSpan())));
        return string.Join('|', modelSha256, inputHash, string.Join(',', input.Shape), requestKey);
    }

    public bool TryGet(string? key, out AttributionMap map)
    {
        map = null!;
        return key is not null && _cache.TryGetValue(key, out map!);
    }

    public void Add(string? key, AttributionMap map)
    {
        if (key is null) return;
        _cache.Set(key, map, new MemoryCacheEntryOptions { Size = (long)map.Map.Length * sizeof(float) + map.Outputs.Length * sizeof(float) + 256 });
    }

    public void Dispose() => _cache.Dispose();
}
