using Microsoft.AspNetCore.Http.HttpResults;
using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;

namespace SaliencyService.Api.Apis;

/// <summary>GET /v1/methods: what the method registry holds, for clients that build their controls from it (the web page).</summary>
public static class MethodsApi
{
    public static IEndpointRouteBuilder MapMethods(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/methods", Methods).WithTags("Inference").WithName(nameof(Methods))
            .WithSummary("The attribution methods, their parameters and default pictures, and the drawing options");
        return app;
    }

    public static Ok<MethodsResponse> Methods() => TypedResults.Ok(new MethodsResponse(
        AttributionMethods.All.Select(m => new MethodDescriptor(m.Name, m.IsCam, m.Parameters.Select(p => p.Name).ToArray(),
            new RenderDefaults(m.RenderDefaults.View, m.RenderDefaults.Colormap, m.RenderDefaults.Sign, m.RenderDefaults.ClipPercentile,
                m.RenderDefaults.Alpha))).ToArray(),
        RenderOptions.Views, Colormaps.Names.ToArray(), RenderOptions.Signs, ExplainQuery.Formats));
}
