using System.Globalization;
using SaliencyService.Api.Inference;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;

namespace SaliencyService.Api.Apis;

/// <summary>POST /v1/models/{name}/explain.</summary>
public static class ExplainApi
{
    public static readonly string[] Formats = ["png", "json", "npy"];

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
            .Produces<ExplainResponse>(StatusCodes.Status200OK, "image/png", "application/json", "application/x-npy")
            .AcceptsModelInputs();

        return app;
    }

    /// <summary>Explains one prediction with a saliency map.</summary>
    /// <param name="name">The model.</param>
    /// <param name="method">guided-backprop (default), gradient, deconvnet, input-x-gradient, integrated-gradients, smoothgrad, grad-cam, guided-grad-cam.</param>
    /// <param name="target">Class index into the flattened output of one sample, or a label; default the top-1 of the pre-softmax score.</param>
    /// <param name="layer">Grad-CAM layer: an ONNX tensor name from explain.layers; default explain.defaultLayer.</param>
    /// <param name="steps">Integrated gradients: steps from the zero baseline (default 50).</param>
    /// <param name="samples">SmoothGrad: noisy samples (default 25).</param>
    /// <param name="noise">SmoothGrad: noise σ as a fraction of the input's value range (default 0.15).</param>
    /// <param name="seed">SmoothGrad: RNG seed, for a reproducible map (default: random, reported in JSON).</param>
    /// <param name="base">SmoothGrad: the method it smooths: gradient (default), guided-backprop, deconvnet, input-x-gradient.</param>
    /// <param name="format">png (default), json or npy (the raw map: model-input shape and layout; [H, W] for grad-cam).</param>
    /// <param name="view">PNG view: heatmap, overlay, rgb, gray. Defaults: rgb for guided-backprop, deconvnet and guided-grad-cam; overlay for grad-cam; heatmap otherwise.</param>
    /// <param name="colormap">jet, viridis, inferno, gray, bwr (default inferno; jet for grad-cam; bwr for sign=diverging).</param>
    /// <param name="sign">absolute (default), positive, negative, diverging (positive for grad-cam).</param>
    /// <param name="clip">Percentile of |value| that saturates the colormap (default 99.5; 100 for grad-cam).</param>
    /// <param name="alpha">Overlay: weight of the heatmap over the image (default 0.5).</param>
    public static async Task<IResult> Explain(
        string name, HttpRequest request, HttpResponse response, ExplainService service,
        string? method = null, string? target = null, string? layer = null, int? steps = null, int? samples = null,
        double? noise = null, int? seed = null, string? @base = null, string? format = null,
        string? view = null, string? colormap = null, string? sign = null, double? clip = null, double? alpha = null,
        CancellationToken cancellationToken = default)
    {
        var explainRequest = new ExplainRequest(AttributionMethods.Parse(method), target, steps ?? 50, samples ?? 25,
            noise ?? 0.15, seed, AttributionMethods.Parse(@base, AttributionMethod.Gradient), layer);
        var outputFormat = (format ?? "png").ToLowerInvariant();
        if (!Formats.Contains(outputFormat)) throw ProblemException.BadRequest($"Unknown format '{format}'; use png, json or npy.");
        var rendering = RenderOptions.Resolve(explainRequest.Method, view, colormap, sign, clip, alpha);

        using var explanation = await service.ExplainAsync(name, request, explainRequest, keepImages: outputFormat != "npy", cancellationToken);
        response.Headers["X-Explain-Cache"] = explanation.Cached ? "hit" : "miss";
        response.Headers["X-Explain-Target"] = explanation.Map.Target.ToString(CultureInfo.InvariantCulture);
        response.Headers["X-Explain-Score"] = explanation.Map.Score.ToString("R", CultureInfo.InvariantCulture);
        return ExplanationWriter.Write(explanation, outputFormat, rendering);
    }
}
