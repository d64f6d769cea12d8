using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace SaliencyService.Api.Models;

/// <summary>
/// Ready once the model store has been loaded. Models that failed to load here are named in the
/// detail; they do not make the replica unready, as the others are served.
/// </summary>
public sealed class StoreReadyCheck(ModelStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!store.IsLoaded) return Task.FromResult(HealthCheckResult.Unhealthy("Model store is loading"));
        var failed = store.Failed;
        var detail = $"{store.List().Count} model(s) served";
        if (failed.Count > 0) detail += $"; failed to load here: {string.Join("; ", failed.Select(f => $"{f.Key} ({f.Value})"))}";
        return Task.FromResult(HealthCheckResult.Healthy(detail));
    }
}
