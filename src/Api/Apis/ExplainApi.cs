using SaliencyService.Api.Errors;
using System.Globalization;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Inputs;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.Apis;

/// <summary>POST /v1/models/{name}/explain.</summary>
public static class ExplainApi
{
    public static IEndpointRouteBuilder MapExplain(this IEndpointRouteBuilder app)
    {
        var group = InferenceApi.Group(app);
        group.MapPost("/explain", Explain)
            .WithName(nameof(Explain))
            .WithSummary("Explain a prediction with a saliency map")
            .WithDescription("Back-propagates the target's pre-softmax score through the model, on the gradient engine its import chose " +
                             "(explain.gradientEngine: ONNX Runtime, or libtorch autograd through the mirror). " +
                             "format=npy: the raw map in the model-input shape and layout; png: a picture the size of the upload " +
                             "(guided backprop and deconvnet as the classic standardised-gradient image, gradient as a heatmap); " +
                             "json: target, label, score, top outputs and the PNG in base64. Headers X-Explain-Target and " +
                             "X-Explain-Score carry the target and score. 422 when the model cannot be explained " +
                             "(its descriptor's explain section says why); 503 + Retry-After when every explain slot is busy.")
            // One 200 with three media types; BinaryResponseFilter marks the PNG and .npy ones binary.
            .Produces<ExplainResponse>(StatusCodes.Status200OK, "image/png", "application/json", Npy.MediaType)
            .AcceptsModelInputs();

        return app;
    }

    /// <summary>Explains one prediction with a saliency map.</summary>
    /// <param name="name">The model.</param>
    public static async Task<IResult> Explain(string name, [AsParameters] ExplainQuery query, HttpRequest request, HttpResponse response,
        ExplainService service, ModelInputReader inputs, CancellationToken cancellationToken)
    {
        var explainRequest = query.ToRequest();
        var format = query.OutputFormat();
        var rendering = query.Rendering(explainRequest.Method);

        using var explanation = await service.ExplainAsync(name,
            (model, token) => inputs.ReadAsync(request, model, allowBatch: false, token, keepImages: format != "npy"), explainRequest, cancellationToken);
        response.Headers["X-Explain-Cache"] = explanation.Cached ? "hit" : "miss";
        response.Headers["X-Explain-Target"] = explanation.Map.Target.ToString(CultureInfo.InvariantCulture);
        response.Headers["X-Explain-Score"] = explanation.Map.Score.ToString("R", CultureInfo.InvariantCulture);
        return ExplanationWriter.Write(explanation, format, rendering);
    }
}
