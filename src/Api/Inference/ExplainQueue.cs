using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Explain;

namespace SaliencyService.Api.Inference;

/// <summary>
/// Bounds the explanations computed at once (each is a forward and a backward pass on all
/// cores); the rest wait up to a timeout, then get 503 with Retry-After instead of piling up.
/// </summary>
public sealed class ExplainQueue(IOptions<SaliencyOptions> options) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.Value.Explain.MaxConcurrent));
    private readonly TimeSpan _timeout = TimeSpan.FromSeconds(Math.Max(0, options.Value.Explain.QueueTimeoutSeconds));

    public async Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        if (!await _slots.WaitAsync(_timeout, cancellationToken))
            throw ProblemException.Busy("Every explain slot is busy; retry shortly.", retryAfterSeconds: 5);
        try
        {
            // libtorch work is CPU-bound and synchronous: keep it off the request thread.
            return await Task.Run(work, cancellationToken);
        }
        finally
        {
            _slots.Release();
        }
    }

    public void Dispose() => _slots.Dispose();
}
