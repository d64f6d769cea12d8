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
/// A mirror and its ONNX Runtime backward, prepared from a plan before the verdict that will use
/// them (<see cref="ExplainAnalysis.Prepare"/>): the mirror is built at once, the backward's session
/// once the verdict serves them (<see cref="Serve"/>). The isolated check runs at a low CPU
/// priority, so whatever the service builds beside it comes off the check's own time: building the
/// session after the verdict took ~0.15 s off a resnet18 import, and the model is answered for
/// before it is built anyway (a map asked for meanwhile waits for it).
/// Owned by whoever adopts them, disposed otherwise.
/// </summary>
public sealed class PreparedBackward : IDisposable
{
    private readonly TaskCompletionSource _served = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _disposed;

    /// <param name="build">Builds the backward from the built mirror, once served.</param>
    public PreparedBackward(BackwardPlan plan, Task<GraphMirror> mirror, Func<GraphMirror, OrtBackprop> build)
    {
        Plan = plan;
        Mirror = mirror;
        Backprop = Task.Run(async () =>
        {
            var built = await mirror;
            await _served.Task;
            return build(built);
        });
    }

    public BackwardPlan Plan { get; }
    public Task<GraphMirror> Mirror { get; }

    /// <summary>The backward, built once served; cancelled where let go before that.</summary>
    public Task<OrtBackprop> Backprop { get; }

    /// <summary>Whether it was let go (<see cref="Dispose"/>).</summary>
    public bool Disposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Starts building the backward and returns the mirror (waiting for it).</summary>
    /// <exception cref="Exception">What the mirror's build failed with.</exception>
    public GraphMirror Serve()
    {
        _served.TrySetResult();
        return Mirror.GetAwaiter().GetResult();
    }

    /// <summary>
    /// Disposes both once the backward's build has ended (an import that fails after taking them
    /// lets go of what it loaded again); a backward not yet served is never built. Not the mirror as
    /// soon as it is built: the backward is written from the mirror's constants, and freeing them
    /// under that build crashed the process.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _served.TrySetCanceled();
        Task.WhenAll(Mirror, Backprop).ContinueWith(_ =>
        {
            if (Backprop.IsCompletedSuccessfully) Backprop.Result.Dispose();
            if (Mirror.IsCompletedSuccessfully) Mirror.Result.Dispose();
        }, TaskScheduler.Default);
    }
}
