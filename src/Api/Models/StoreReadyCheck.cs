using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace SaliencyService.Api.Models;

/// <summary>
/// Ready once the model store has been loaded. Models that failed to load here are named in the
/// detail; they do not make the replica unready, as the others are served, unless the store is
/// read-only (KServe's): nothing can fix it by an import, so the replica must not take traffic.
/// </summary>
public sealed class StoreReadyCheck(ModelStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!store.IsLoaded) return Task.FromResult(HealthCheckResult.Unhealthy("Model store is loading"));
        var failed = store.Failed;
        var detail = $"{store.List().Count} model(s) served";
        if (failed.Count > 0) detail += $"; failed to load here: {string.Join("; ", failed.Select(f => $"{f.Key} ({f.Value})"))}";
        if (failed.Count > 0 && store.Layout.ReadOnly) return Task.FromResult(HealthCheckResult.Unhealthy(detail));
        return Task.FromResult(HealthCheckResult.Healthy(detail));
    }
}
