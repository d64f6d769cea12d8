using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// Grad-CAM: ReLU(Σ_c mean_hw(∂score/∂A_c) · A_c) for a 4-D activation A ([N, C, h, w]), upsampled
/// bilinearly (align_corners = false) to the model input's height and width, not normalised.
/// Guided Grad-CAM multiplies guided backprop by that map, channel by channel.
/// </summary>
public static class GradCam
{
    /// <param name="inputSize">(height, width) of the model input.</param>
    public static AttributionMap Attribute(ExplainContext context, string layer, (long Height, long Width) inputSize) =>
        context.Result(AttributionMethod.GradCam, Map(context, layer, inputSize), new Dictionary<string, object> { ["layer"] = layer });

    public static AttributionMap AttributeGuided(ExplainContext context, string layer, (long Height, long Width) inputSize, bool channelsLast)
    {
        var cam = Map(context, layer, inputSize);
        var guided = context.InputGradient(RectifierRule.GuidedBackprop)[0];
        var weighted = guided * (channelsLast ? cam.unsqueeze(-1) : cam.unsqueeze(0));
        return context.Result(AttributionMethod.GuidedGradCam, weighted, new Dictionary<string, object> { ["layer"] = layer });
    }

    private static Tensor Map(ExplainContext context, string layer, (long Height, long Width) inputSize)
    {
        if (!context.Model.Layers.Any(l => l.Name == layer))
            throw ProblemException.BadRequest($"layer '{layer}' is not a 4-D tensor of the model; see explain.layers in its descriptor.");

        var (activation, gradient) = context.LayerGradient(layer);

        var weights = gradient.mean([2, 3], keepdim: true);             // [1, C, 1, 1]
        var cam = (weights * activation).sum(1, keepdim: true).relu();  // [1, 1, h, w]
        var upsampled = F.interpolate(cam.detach(), [inputSize.Height, inputSize.Width], mode: InterpolationMode.Bilinear, align_corners: false);
        return upsampled[0, 0];
    }
}
