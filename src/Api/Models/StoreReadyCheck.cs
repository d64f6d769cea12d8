using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace SaliencyService.Api.Models;

/// <summary>Ready once the model store has been loaded.</summary>
public sealed class StoreReadyCheck(ModelStore store) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(store.IsLoaded
            ? HealthCheckResult.Healthy($"{store.List().Count} model(s) served")
            : HealthCheckResult.Unhealthy("Model store is loading"));
}
