using SaliencyService.Explain.Rendering;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Attribution.Methods;

/// <summary>
/// Grad-CAM: ReLU(Σ_c mean_hw(∂score/∂A_c) · A_c) for an activation A on a spatial grid
/// ([N, C, h, w]; channels-last and transformer tokens are reshaped to it, <see cref="CamLayouts"/>),
/// upsampled bilinearly (align_corners = false) to the model input's height and width, not normalised.
/// </summary>
public sealed class GradCam : AttributionMethod
{
    public const string MethodName = "grad-cam";

    internal static readonly MethodParameter Layer = new("layer", r => r.Layer);

    public override string Name => MethodName;
    public override int Order => 6;
    public override bool IsCam => true;
    public override RenderOptions RenderDefaults => RenderOptions.Overlay;
    public override IReadOnlyList<MethodParameter> Parameters => [Layer];

    public override Attributions Attribute(ExplainContext context, Tensor inputs)
    {
        var layer = LayerOf(context);
        return new(Maps(context, inputs, layer), new Dictionary<string, object> { ["layer"] = layer });
    }

    /// <summary>The request's layer, checked against the model's, or the model's default.</summary>
    internal static string LayerOf(ExplainContext context)
    {
        var model = context.Model;
        var layer = context.Request.Layer ?? model.DefaultLayer ?? throw new UnsupportedModelException("The model has no 4-D activation for Grad-CAM.");
        return model.Layers.Any(l => l.Name == layer)
            ? layer
            : throw new InvalidArgumentException($"layer '{layer}' is not a 4-D tensor of the model; see explain.layers in its descriptor.");
    }

    /// <summary>[n, H, W]: one layer backward per sample.</summary>
    internal static Tensor Maps(ExplainContext context, Tensor inputs, string layer) =>
        stack(ExplainContext.Samples(inputs).Select(sample => Map(context, sample, layer)), 0);

    private static Tensor Map(ExplainContext context, Tensor input, string layer)
    {
        var (activation, gradient) = context.LayerGradient(input, layer);
        var layout = context.Model.Layers.First(l => l.Name == layer).Layout;
        (activation, gradient) = (CamLayouts.ToChannelsFirst(activation, layout), CamLayouts.ToChannelsFirst(gradient, layout));
        var weights = gradient.mean([2, 3], keepdim: true);             // [1, C, 1, 1]
        var cam = (weights * activation).sum(1, keepdim: true).relu();  // [1, 1, h, w]
        var (height, width) = context.InputSize;
        return F.interpolate(cam.detach(), [height, width], mode: InterpolationMode.Bilinear, align_corners: false)[0, 0];
    }
}
