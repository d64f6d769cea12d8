using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Attribution;

/// <summary>input × ∂score/∂input.</summary>
public static class InputXGradient
{
    public static AttributionMap Attribute(ExplainContext context) =>
        context.Result(AttributionMethod.InputXGradient, (context.Input * context.InputGradient(RectifierRule.Gradient))[0]);
}
