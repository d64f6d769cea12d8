using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using SaliencyService.Api.Apis;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Attribution.Methods;
using SaliencyService.Explain.Rendering;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace SaliencyService.Api.Swagger;

/// <summary>
/// Query parameters that take one of a closed set of names are enums in OpenAPI, so Swagger UI and
/// generated clients offer the choices. The sets are the ones the handlers validate against.
/// </summary>
public sealed class ClosedParameterSetsFilter : IOperationFilter
{
    private static readonly Dictionary<string, IEnumerable<string>> Sets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["method"] = AttributionMethods.Names,
        ["base"] = NoiseTunnel.BaseNames,
        ["format"] = ExplainQuery.Formats,
        ["view"] = RenderOptions.Views,
        ["colormap"] = Colormaps.Names,
        ["sign"] = RenderOptions.Signs,
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        foreach (var parameter in operation.Parameters ?? [])
        {
            if (parameter.In != ParameterLocation.Query || parameter.Name is null || !Sets.TryGetValue(parameter.Name, out var names)) continue;
            if (parameter is not OpenApiParameter editable) continue;
            editable.Schema = new OpenApiSchema { Type = JsonSchemaType.String, Enum = names.Select(n => (JsonNode)JsonValue.Create(n)!).ToList() };
        }
    }
}
