using Microsoft.OpenApi;
using SaliencyService.Explain.Tensors;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace SaliencyService.Api.Swagger;

/// <summary>Marks image and NumPy response bodies as binary so Swagger UI offers a download.</summary>
public sealed class BinaryResponseFilter : IOperationFilter
{
    private static readonly string[] BinaryTypes = ["image/png", "application/octet-stream", Npy.MediaType];

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.Responses is null) return;
        foreach (var response in operation.Responses.Values)
        {
            if (response.Content is null) continue;
            foreach (var (type, media) in response.Content)
            {
                if (BinaryTypes.Contains(type))
                    media.Schema = new OpenApiSchema { Type = JsonSchemaType.String, Format = "binary" };
            }
        }
    }
}
