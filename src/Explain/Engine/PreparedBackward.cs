using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// What a model's ONNX Runtime backward is built from: the mirror's input and explained output, and
/// the value shapes the backward is written for (<see cref="OrtBackprop.Shapes"/>).
/// </summary>
public sealed record BackwardPlan(string Input, string Output, Dictionary<string, TensorInfo> Shapes)
{
    /// <summary>Whether a verdict's build would be this one: the same names and the same shape for every value.</summary>
    public bool Matches(string input, string output, IReadOnlyDictionary<string, TensorInfo>? shapes) =>
        Input == input && Output == output && shapes is not null && shapes.Count == Shapes.Count
        && shapes.All(entry => Shapes.TryGetValue(entry.Key, out var info) && info.Equals(entry.Value));
}

/// <summary>
/// A mirror and its ONNX Runtime backward, being built from a plan before the verdict that will use
/// them (<see cref="ExplainAnalysis.Prepare"/>): the mirror first, then the backward's session.
/// Owned by whoever adopts them, disposed otherwise.
/// </summary>
public sealed class PreparedBackward(BackwardPlan plan, Task<GraphMirror> mirror, Task<OrtBackprop> backprop) : IDisposable
{
    private int _disposed;

    public BackwardPlan Plan { get; } = plan;
    public Task<GraphMirror> Mirror { get; } = mirror;
    public Task<OrtBackprop> Backprop { get; } = backprop;

    /// <summary>Whether it was let go (<see cref="Dispose"/>).</summary>
    public bool Disposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Disposes both once the backward's build has ended (an import that fails after taking them
    /// lets go of what it loaded again). Not the mirror as soon as it is built: the backward is
    /// written from the mirror's constants, and freeing them under that build crashed the process.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Task.WhenAll(Mirror, Backprop).ContinueWith(_ =>
        {
            if (Backprop.IsCompletedSuccessfully) Backprop.Result.Dispose();
            if (Mirror.IsCompletedSuccessfully) Mirror.Result.Dispose();
        }, TaskScheduler.Default);
    }
}
