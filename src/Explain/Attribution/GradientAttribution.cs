using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// Gradient, guided backprop and deconvnet: one back-propagation of the target's score, differing
/// only in the rectifier rule (as Captum's GuidedBackprop and Deconvolution are one class).
/// </summary>
public static class GradientAttribution
{
    public static RectifierRule Rule(AttributionMethod method) => method switch
    {
        AttributionMethod.GuidedBackprop => RectifierRule.GuidedBackprop,
        AttributionMethod.Deconvnet => RectifierRule.Deconvnet,
        _ => RectifierRule.Gradient,
    };

    public static AttributionMap Attribute(ExplainContext context, AttributionMethod method) =>
        context.Result(method, context.InputGradient(Rule(method))[0]);
}
