using Microsoft.Extensions.Diagnostics.HealthChecks;
using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// Readiness detail for the explain engine: how libtorch loaded and what oneDNN may use (and why).
/// Never unready on its own: without libtorch the service still predicts, and says so here.
/// </summary>
public sealed class ExplainEngineCheck(ExplainAnalysis analysis) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var (loaded, status) = analysis.Engine;
        return Task.FromResult(HealthCheckResult.Healthy(loaded ? status : "unavailable, models predict but do not explain: " + status));
    }
}
