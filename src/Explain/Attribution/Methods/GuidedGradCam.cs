using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Rendering;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution.Methods;

/// <summary>Guided Grad-CAM: guided backprop multiplied, channel by channel, by the Grad-CAM map.</summary>
public sealed class GuidedGradCam : AttributionMethod
{
    public override string Name => "guided-grad-cam";
    public override int Order => 7;
    public override RenderOptions RenderDefaults => RenderOptions.Picture;
    public override IReadOnlyList<MethodParameter> Parameters => [GradCam.Layer];

    public override Attributions Attribute(ExplainContext context, Tensor inputs)
    {
        var layer = GradCam.LayerOf(context);
        var cams = GradCam.Maps(context, inputs, layer);                       // [n, H, W]
        var guided = context.Gradients(inputs, RectifierRule.GuidedBackprop);  // [n, C, H, W] or [n, H, W, C]
        return new(guided * (context.ChannelsLast ? cams.unsqueeze(-1) : cams.unsqueeze(1)),
            new Dictionary<string, object>(RectifiedGradient.RuleReport(context)) { ["layer"] = layer });
    }
}
