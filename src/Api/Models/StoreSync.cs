using Microsoft.Extensions.Options;

namespace SaliencyService.Api.Models;

/// <summary>
/// Follows the model store the way Triton's <c>--model-control-mode=poll</c> does: every
/// <see cref="ModelStoreOptions.PollSeconds"/> the served models are brought in line with the
/// folder (<see cref="ModelStore.SyncAsync"/>). Runs after the store has loaded.
/// </summary>
public sealed class StoreSync(ModelStore store, IOptions<ModelStoreOptions> options, ILogger<StoreSync> logger) : BackgroundService
{
    /// <summary>When the last pass finished (for readiness details).</summary>
    public DateTimeOffset? LastPass { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.PollSeconds;
        if (interval <= 0) return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(interval));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await store.SyncAsync(stoppingToken);
                LastPass = DateTimeOffset.UtcNow;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The volume hiccupped: counted and logged, the next tick tries again.
                store.Count("error");
                logger.LogWarning("Could not read the model store: {Reason}", e.Message);
            }
        }
    }
}
