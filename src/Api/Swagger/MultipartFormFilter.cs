using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace SaliencyService.Api.Swagger;

/// <summary>Writes the request body of endpoints carrying <see cref="MultipartForm"/> metadata.</summary>
public sealed class MultipartFormFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var form = context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<MultipartForm>().FirstOrDefault();
        if (form is null) return;

        var schema = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = new Dictionary<string, IOpenApiSchema>(),
            Required = new HashSet<string>(),
        };
        foreach (var field in form.Fields)
        {
            var part = new OpenApiSchema { Type = JsonSchemaType.String, Format = field.IsFile ? "binary" : null };
            var property = field.Multiple ? new OpenApiSchema { Type = JsonSchemaType.Array, Items = part } : part;
            property.Description = field.Description;
            schema.Properties[field.Name] = property;
            if (field.Required) schema.Required.Add(field.Name);
        }
        operation.RequestBody = new OpenApiRequestBody
        {
            Required = true,
            Content = new Dictionary<string, OpenApiMediaType> { ["multipart/form-data"] = new() { Schema = schema } },
        };
    }
}
