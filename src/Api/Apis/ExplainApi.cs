using System.Globalization;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;
using SaliencyService.Explain.Tensors;

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
        string name, HttpRequest request, HttpResponse response, ModelStore store, ModelInputReader inputs, InferenceQueues queues, ServiceMetrics metrics, ExplanationCache cache,
        IOptions<SaliencyOptions> options,
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

        using var lease = store.Lease(name);
        var model = lease.Model;
        if (model.Explainer is not { } explainer)
        {
            var unsupported = model.Descriptor.Explain.UnsupportedOperators;
            throw ProblemException.Unprocessable($"Model '{name}' cannot be explained: {model.Descriptor.Explain.Reason}" +
                                                 (unsupported.Count > 0 ? " Unsupported: " + string.Join(", ", unsupported) + "." : ""));
        }

        var p = model.Preprocessing;
        using var deadline = new RequestDeadline(cancellationToken, TimeSpan.FromSeconds(options.Value.RequestTimeoutSeconds));
        using var input = await inputs.ReadAsync(request, model.Descriptor, allowBatch: false, deadline.Token, keepImages: outputFormat != "npy");
        var fixedBatch = model.Descriptor.Inputs.First(i => i.Name == p.Input).Shape[0];
        var maxBatch = fixedBatch > 0 ? (int)fixedBatch : options.Value.Explain.MaxBatch;
        var cacheKey = cache.Key(model.Descriptor.Sha256, input.Tensor, explainRequest);
        var cached = cache.TryGet(cacheKey, out var map);
        response.Headers["X-Explain-Cache"] = cached ? "hit" : "miss";
        if (!cached)
        {
            map = await deadline.RunAsync(token => queues.Explain.RunAsync(t => metrics.Measure($"explain:{explainer.Engine.Name}:{explainRequest.Method.Name()}", name,
                () => Explainer.Explain(explainer, input.Tensor, explainRequest, model.Descriptor.Labels, p.Layout, maxBatch, t)), token));
            NonFinite.Check(map!.Outputs, "output");
            NonFinite.Check(map.Map, $"{explainRequest.Method.Name()} map");
            cache.Add(cacheKey, map);
        }

        response.Headers["X-Explain-Target"] = map.Target.ToString(CultureInfo.InvariantCulture);
        response.Headers["X-Explain-Score"] = map.Score.ToString("R", CultureInfo.InvariantCulture);
        var methodName = explainRequest.Method.Name();
        if (outputFormat == "npy") return TypedResults.Bytes(Npy.Write(map.Map, map.MapShape), "application/x-npy", $"{name}.{methodName}.npy");

        using var reconstructed = input.Images is null ? InputPicture.FromTensor(input.Tensor.Data, p) : null;
        var background = input.Images?[0] ?? reconstructed!;
        var png = SaliencyRenderer.Png(map, p, rendering, background);
        if (outputFormat == "png") return TypedResults.Bytes(png, "image/png");

        var labels = model.Descriptor.Labels;
        var label = labels is not null && map.Target < labels.Count ? labels[map.Target] : null;
        var parameters = new Dictionary<string, object>(map.Parameters)
        {
            ["view"] = rendering.View, ["colormap"] = rendering.Colormap, ["sign"] = rendering.Sign,
            ["clip"] = rendering.ClipPercentile, ["alpha"] = rendering.Alpha,
        };
        return TypedResults.Ok(new ExplainResponse(name, methodName, map.Target, label, map.Score, Predictor.Top(map.Outputs, 5, labels),
            parameters, background.Width, background.Height, Convert.ToBase64String(png)));
    }
}
