using System.Globalization;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.Apis;

/// <summary>POST /v1/models/{name}/explain.</summary>
public static class ExplainApi
{
    private static readonly string[] Formats = ["png", "json", "npy"];

    /// <summary>Explains one prediction with a saliency map.</summary>
    /// <param name="name">The model.</param>
    /// <param name="method">guided-backprop (default), gradient or deconvnet.</param>
    /// <param name="target">Class index into the flattened output of one sample, or a label; default the top-1 of the pre-softmax score.</param>
    /// <param name="format">png (default), json or npy.</param>
    public static async Task<IResult> Explain(
        string name, HttpRequest request, HttpResponse response, ModelStore store, ModelInputReader inputs, ExplainQueue queue,
        string? method = null, string? target = null, string? format = null, CancellationToken cancellationToken = default)
    {
        var attributionMethod = AttributionMethods.Parse(method);
        var outputFormat = (format ?? "png").ToLowerInvariant();
        if (!Formats.Contains(outputFormat)) throw ProblemException.BadRequest($"Unknown format '{format}'; use png, json or npy.");

        using var lease = store.Lease(name);
        var model = lease.Model;
        if (model.Explainer is not { } explainer)
        {
            var unsupported = model.Descriptor.Explain.UnsupportedOperators;
            throw ProblemException.Unprocessable($"Model '{name}' cannot be explained: {model.Descriptor.Explain.Reason}" +
                                                 (unsupported.Count > 0 ? " Unsupported: " + string.Join(", ", unsupported) + "." : ""));
        }

        var input = await inputs.ReadAsync(request, model.Descriptor, allowBatch: false, cancellationToken);
        var map = await queue.RunAsync(
            () => GradientAttribution.Explain(explainer, input.Tensor, attributionMethod, target, model.Descriptor.Labels),
            cancellationToken);

        response.Headers["X-Explain-Target"] = map.Target.ToString(CultureInfo.InvariantCulture);
        response.Headers["X-Explain-Score"] = map.Score.ToString("R", CultureInfo.InvariantCulture);
        if (outputFormat == "npy") return TypedResults.Bytes(Npy.Write(map.Map, map.MapShape), "application/x-npy", $"{name}.{attributionMethod.Name()}.npy");

        var p = model.Preprocessing;
        var size = input.SourceSizes[0] ?? new ImageSize(p.Width, p.Height);
        var png = SaliencyRenderer.Png(map, p, size.Width, size.Height);
        if (outputFormat == "png") return TypedResults.Bytes(png, "image/png");

        var labels = model.Descriptor.Labels;
        var label = labels is not null && map.Target < labels.Count ? labels[map.Target] : null;
        var top = Predictor.Top(map.Outputs, 5, labels);
        return TypedResults.Ok(new ExplainResponse(name, attributionMethod.Name(), map.Target, label, map.Score, top,
            size.Width, size.Height, Convert.ToBase64String(png)));
    }
}
