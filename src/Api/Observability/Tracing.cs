using System.Diagnostics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace SaliencyService.Api.Observability;

/// <summary>
/// OpenTelemetry tracing, off unless <c>Saliency:Tracing:OtlpEndpoint</c> is set: ASP.NET Core
/// request spans plus the service's own spans around ONNX Runtime runs and mirror explanations,
/// exported over OTLP.
/// </summary>
public static class Tracing
{
    public static readonly ActivitySource Source = new("SaliencyService");

    public static IServiceCollection AddOptionalTracing(this IServiceCollection services, string? otlpEndpoint)
    {
        if (string.IsNullOrWhiteSpace(otlpEndpoint)) return services;
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("saliency-service"))
            .WithTracing(tracing => tracing
                .AddSource(Source.Name)
                .AddAspNetCoreInstrumentation()
                .AddOtlpExporter(otlp => otlp.Endpoint = new Uri(otlpEndpoint)));
        return services;
    }
}
