using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution.Methods;

/// <summary>input × ∂score/∂input.</summary>
public sealed class InputXGradient : AttributionMethod
{
    public override string Name => "input-x-gradient";
    public override int Order => 3;

    public override Attributions Attribute(ExplainContext context, Tensor inputs) =>
        new(inputs * context.Gradients(inputs, RectifierRule.Gradient));
}
