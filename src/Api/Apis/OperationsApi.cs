using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using SaliencyService.Api.Observability;

namespace SaliencyService.Api.Apis;

/// <summary>Liveness and readiness probes (mapped as endpoints so Swagger documents them).</summary>
public static class OperationsApi
{
    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/health").WithTags("Operations");
        group.MapGet("/live", Live).WithName(nameof(Live)).WithSummary("Liveness: the process answers");
        group.MapGet("/ready", Ready).WithName(nameof(Ready)).WithSummary("Readiness: the model store is loaded")
            .Produces<HealthReportResponse>(StatusCodes.Status503ServiceUnavailable);
        app.MapGet("/metrics", Metrics).WithTags("Operations").WithName(nameof(Metrics))
            .WithSummary("Prometheus metrics: requests and latency per route, engine time, queues, models")
            .Produces<string>(StatusCodes.Status200OK, "text/plain");
        return app;
    }

    public static IResult Metrics(ServiceMetrics metrics) =>
        TypedResults.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");

    public static Ok<HealthReportResponse> Live() => TypedResults.Ok(new HealthReportResponse("Healthy", null));

    public static async Task<Results<Ok<HealthReportResponse>, JsonHttpResult<HealthReportResponse>>> Ready(
        HealthCheckService health, CancellationToken cancellationToken)
    {
        var report = await Readiness.CheckAsync(health, cancellationToken);
        var body = new HealthReportResponse(
            report.Status.ToString(),
            report.Entries.ToDictionary(e => e.Key, e => e.Value.Description ?? e.Value.Status.ToString()));
        return report.Status == HealthStatus.Healthy
            ? TypedResults.Ok(body)
            : TypedResults.Json(body, statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}

/// <summary>Status of the service and of each readiness check.</summary>
public sealed record HealthReportResponse(string Status, IReadOnlyDictionary<string, string>? Checks);
