using System.Collections.Concurrent;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// The float arrays that uploaded inputs are decoded into, reused from request to request. A 224²
/// image tensor is 0.6 MB, a large object to the GC, and a fresh large array is memory the kernel
/// maps in page by page as the upload is copied in: ~80 page faults a request, ~1 ms of a 13 ms
/// prediction on a VM where a fault costs 11 µs (bench/analysis.md). A model's inputs all have
/// the same size, so arrays are kept by exact length, up to <see cref="MaxKeptBytes"/> in all.
/// </summary>
public sealed class InputBuffers
{
    /// <summary>Arrays below the GC's large-object threshold come cheap from the young generation.</summary>
    public const int MinPooledLength = 85_000 / sizeof(float);

    /// <summary>What the kept arrays may hold in all; beyond it returned arrays are left to the GC.</summary>
    public const long MaxKeptBytes = 64L << 20;

    private readonly ConcurrentDictionary<int, ConcurrentBag<float[]>> _free = new();
    private long _keptBytes;

    /// <summary>An array of exactly <paramref name="length"/> floats whose contents are undefined: the caller writes every element.</summary>
    public float[] Rent(int length)
    {
        if (length >= MinPooledLength && _free.TryGetValue(length, out var bag) && bag.TryTake(out var array))
        {
            Interlocked.Add(ref _keptBytes, -Bytes(array));
            return array;
        }
        return GC.AllocateUninitializedArray<float>(length);
    }

    /// <summary>Hands an array back once nothing reads it any more; it must not be used after.</summary>
    public void Return(float[] array)
    {
        if (array.Length < MinPooledLength) return;
        if (Interlocked.Add(ref _keptBytes, Bytes(array)) > MaxKeptBytes)
        {
            Interlocked.Add(ref _keptBytes, -Bytes(array));
            return;
        }
        _free.GetOrAdd(array.Length, _ => []).Add(array);
    }

    /// <summary>Bytes held by the kept arrays (for tests).</summary>
    public long KeptBytes => Interlocked.Read(ref _keptBytes);

    private static long Bytes(float[] array) => (long)array.Length * sizeof(float);
}
