using System.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Api.Security;
using SaliencyService.Api.Swagger;
using SaliencyService.Contracts;

namespace SaliencyService.Api.Apis;

/// <summary>The model repository: import, list, describe, delete.</summary>
public static class ModelsApi
{
    public static IEndpointRouteBuilder MapModels(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/models").WithTags("Models").RequireRateLimiting(RateLimiting.Policy);
        var apiKey = ActivatorUtilities.CreateInstance<ApiKeyFilter>(app.ServiceProvider, false);

        group.MapPost("/", ImportModel)
            .WithName(nameof(ImportModel))
            .WithSummary("Import an ONNX model")
            .WithDescription("Streams the model into the store, validates it with ONNX Runtime and publishes it atomically. " +
                             "201 with the descriptor; 409 when the name exists unless replace=true; 422 when ONNX Runtime cannot load it; " +
                             "507 when the server's disk is full (nothing is kept).")
            .WithMetadata(new MultipartForm(
                new FormField("file", "The .onnx model.", Required: true),
                new FormField("name", "Model name (^[a-z0-9][a-z0-9._-]{0,63}$); default: the file name without extension, lower-cased.", IsFile: false),
                new FormField("manifest", "model.json: input, layout, height, width, channels, scale, mean, std, labels (all optional).", IsFile: false)))
            .Produces<ModelDescriptor>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status507InsufficientStorage)
            .AddEndpointFilter(apiKey)
            .DisableAntiforgery();

        group.MapGet("/", ListModels).WithName(nameof(ListModels)).WithSummary("List the served models");

        group.MapGet("/{name}", GetModel)
            .WithName(nameof(GetModel))
            .WithSummary("Describe one model")
            .ProducesProblem(StatusCodes.Status404NotFound);

        group.MapDelete("/{name}", DeleteModel)
            .WithName(nameof(DeleteModel))
            .WithSummary("Delete a model")
            .WithDescription("Requests already running on the model finish on it.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .AddEndpointFilter(apiKey);

        return app;
    }

    /// <summary>Imports a model from a multipart upload.</summary>
    /// <param name="replace">Replace an existing model of the same name atomically; requests on the old version finish on it.</param>
    public static async Task<Created<ModelDescriptor>> ImportModel(
        HttpRequest request, ModelStore store, IOptions<SaliencyOptions> options, bool replace = false, CancellationToken cancellationToken = default)
    {
        store.EnsureWritable();
        var descriptor = await store.Layout.WithStagingAsync(async staging =>
        {
            var started = Stopwatch.GetTimestamp();
            var upload = await ModelUploadReader.ReadAsync(request, staging, options.Value.MaxModelBytes, cancellationToken);
            ServerTiming.Add("upload", started);
            var name = upload.Name is null ? ModelNames.FromFileName(upload.FileName) : ModelNames.Validate(upload.Name);
            return await store.ImportAsync(staging, name, upload.ManifestJson, replace, cancellationToken, upload.Sha256);
        });
        return TypedResults.Created($"/v1/models/{descriptor.Name}", descriptor);
    }

    public static Ok<IReadOnlyList<ModelDescriptor>> ListModels(ModelStore store) => TypedResults.Ok(store.List());

    public static Ok<ModelDescriptor> GetModel(string name, ModelStore store) => TypedResults.Ok(store.Get(name));

    public static async Task<NoContent> DeleteModel(string name, ModelStore store)
    {
        await store.DeleteAsync(name);
        return TypedResults.NoContent();
    }
}
