using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// The sessions of one backprop pass: one for every batch size, where sessions plan for the shape
/// they last ran (<see cref="PerBatchSize"/>), else one for all.
/// </summary>
/// <remarks>
/// ONNX Runtime's CUDA convolutions build cuDNN 9 execution plans again whenever an input
/// dimension differs from their last run: on an H200, with the exhaustive search, 1.5–5 s per
/// session for resnet18 and mobilenet_v2, paid again at every change, so integrated gradients'
/// batches of 16 and 2 took 17–20 s a request. A session that only ever sees one batch size plans
/// once (docs/performance.md, "GPU").
/// </remarks>
internal sealed class PassSessions : IDisposable
{
    private readonly InferenceSession _first;
    private readonly Func<InferenceSession>? _open;
    private readonly ConcurrentDictionary<long, Lazy<InferenceSession>> _bySize = new();
    private InferenceSession? _unclaimed;

    /// <summary>One session for every batch size.</summary>
    public PassSessions(InferenceSession session) => _first = session;

    /// <summary>
    /// <paramref name="first"/> for the first batch size run, a session from <paramref name="open"/>
    /// for every other.
    /// </summary>
    private PassSessions(InferenceSession first, Func<InferenceSession> open) => (_first, _unclaimed, _open) = (first, first, open);

    /// <summary>Sessions of the same graph, one per batch size (<paramref name="open"/> makes another).</summary>
    public static PassSessions PerBatchSize(InferenceSession first, Func<InferenceSession> open) => new(first, open);

    /// <summary>The session for a batch of <paramref name="samples"/>, opened on its first use.</summary>
    public InferenceSession For(long samples) =>
        _open is null
            ? _first
            : _bySize.GetOrAdd(samples, static (_, self) => new Lazy<InferenceSession>(self.Claim), this).Value;

    /// <summary>The first session, to the first size that asks; a new one to every other.</summary>
    private InferenceSession Claim() => Interlocked.Exchange(ref _unclaimed, null) ?? _open!();

    public void Dispose()
    {
        _first.Dispose();
        foreach (var session in _bySize.Values.Where(s => s.IsValueCreated).Select(s => s.Value))
            if (!ReferenceEquals(session, _first)) session.Dispose();
    }
}
