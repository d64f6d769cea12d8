using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace SaliencyService.Api.Observability;

/// <summary>
/// One readiness for every surface that asks: <c>/health/ready</c>, <c>/v2/health/ready</c>,
/// gRPC's <c>ServerReady</c> and the gRPC health service (grpc.health.v1) are the health checks
/// tagged <see cref="Tag"/>.
/// </summary>
public static class Readiness
{
    /// <summary>Tag of the checks a replica must pass before it takes traffic.</summary>
    public const string Tag = "ready";

    /// <summary>Tag of the liveness check: the process answers.</summary>
    public const string LiveTag = "live";

    public static Task<HealthReport> CheckAsync(HealthCheckService health, CancellationToken cancellationToken) =>
        health.CheckHealthAsync(check => check.Tags.Contains(Tag), cancellationToken);

    public static async Task<bool> IsReadyAsync(HealthCheckService health, CancellationToken cancellationToken) =>
        (await CheckAsync(health, cancellationToken)).Status == HealthStatus.Healthy;
}
