using SaliencyService.Api.Inference;
using SaliencyService.Api.Observability;
using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;

namespace SaliencyService.Api.Apis;

/// <summary>An explanation in the format asked for: the raw map (.npy), a picture (PNG), or JSON with the picture.</summary>
public static class ExplanationWriter
{
    public static IResult Write(Explanation explanation, string format, RenderOptions rendering)
    {
        var (map, model) = (explanation.Map, explanation.Model);
        var name = model.Name;
        var methodName = map.Method.Name;
        if (format == "npy") return new NpyFile(map.Map, map.MapShape, $"{name}.{methodName}.npy");

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var p = SizedTo(model.Preprocessing, explanation.Input.Tensor.Shape);
        var picture = explanation.Input.Images?[0];
        var (width, height) = picture is null ? (p.Width, p.Height) : (picture.Width, picture.Height);
        var png = SaliencyRenderer.Png(map, p, rendering, width, height,
            () => picture is null ? InputPicture.Pixels(explanation.Input.Tensor.Data, p) : InputPicture.Pixels(picture));
        ServerTiming.Add("render", started); // the picture drawn and deflated: a photo's size, not the map's, sets it
        if (format == "png") return TypedResults.Bytes(png, "image/png");

        var labels = model.Descriptor.Labels;
        var label = labels is not null && map.Target < labels.Count ? labels[map.Target] : null;
        var parameters = new Dictionary<string, object>(map.Parameters)
        {
            ["view"] = rendering.View, ["colormap"] = rendering.Colormap, ["sign"] = rendering.Sign,
            ["clip"] = rendering.ClipPercentile, ["alpha"] = rendering.Alpha,
        };
        return TypedResults.Ok(new ExplainResponse(name, methodName, map.Target, label, map.Score, Predictor.Top(map.Outputs, 5, labels),
            parameters, width, height, Convert.ToBase64String(png)));
    }

    /// <summary>The preprocessing at the input's own size: a model with free image sizes takes tensors of other sizes than its images'.</summary>
    private static Preprocessing SizedTo(Preprocessing p, long[] shape) => shape.Length != 4 ? p
        : p.Layout == "NHWC" ? p with { Height = (int)shape[1], Width = (int)shape[2] }
        : p with { Height = (int)shape[2], Width = (int)shape[3] };
}
