using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Api.Security;
using SaliencyService.Api.Swagger;
using SaliencyService.Contracts;

namespace SaliencyService.Api.Apis;

/// <summary>POST /v1/models/{name}/predict.</summary>
public static class InferenceApi
{
    /// <summary>The input parts predict and explain take.</summary>
    public static readonly MultipartForm InputForm = new(
        new FormField("image", "PNG or JPEG, resized to the model input and normalised by the manifest. Several parts form a batch (predict only).", Multiple: true),
        new FormField("tensor", "A float32 .npy array of the model input shape, with or without the batch dimension, used as is (converted to the input's element type: whole numbers for an integer input)."));

    public static IEndpointRouteBuilder MapInference(this IEndpointRouteBuilder app)
    {
        var group = Group(app);

        group.MapPost("/predict", Predict)
            .WithName(nameof(Predict))
            .WithSummary("Predict with ONNX Runtime")
            .WithDescription("The top-k scores of each input, as the model outputs them, highest first.")
            .AcceptsModelInputs();

        return app;
    }

    /// <summary>
    /// What predict and explain share: the input form (for Swagger), the problems its inputs can
    /// raise, and no antiforgery (API clients post multipart forms).
    /// </summary>
    public static RouteHandlerBuilder AcceptsModelInputs(this RouteHandlerBuilder route) =>
        route.WithMetadata(InputForm)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .DisableAntiforgery();

    /// <summary>The routes of one served model, as predict and explain share them: rate limit and the inference API key.</summary>
    public static RouteGroupBuilder Group(IEndpointRouteBuilder app) =>
        app.MapGroup("/v1/models/{name}").WithTags("Inference")
            .RequireRateLimiting(RateLimiting.Policy)
            .AddEndpointFilter(ActivatorUtilities.CreateInstance<ApiKeyFilter>(app.ServiceProvider, true));

    /// <summary>Runs the model on the uploaded inputs.</summary>
    /// <param name="name">The model.</param>
    /// <param name="topK">How many of the highest scores to return per input (1–1000).</param>
    public static async Task<Ok<PredictResponse>> Predict(
        string name, HttpRequest request, ModelStore store, ModelInputReader inputs, PredictBatchers batchers,
        IOptions<SaliencyOptions> options, int topK = 5, CancellationToken cancellationToken = default)
    {
        Predictor.CheckTopK(topK);
        using var lease = store.Lease(name);
        var model = lease.Model;
        using var deadline = new RequestDeadline(cancellationToken, TimeSpan.FromSeconds(options.Value.RequestTimeoutSeconds));
        using var input = await inputs.ReadAsync(request, model.Descriptor, allowBatch: true, deadline.Token);
        var batcher = batchers.For(model);
        var scores = await deadline.RunAsync(token => batcher is not null
            ? Predictor.ScoresAsync(batcher, model, input.Tensor, token)
            : batchers.RunAloneAsync(model, input.Tensor.Shape[0], t => Predictor.Scores(model, input.Tensor, t), token));
        return TypedResults.Ok(Predictor.Rank(model.Descriptor, scores, topK));
    }
}
