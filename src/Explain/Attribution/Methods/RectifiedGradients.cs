using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Rendering;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution.Methods;

/// <summary>
/// ∂score/∂input under a rectifier rule: one back-propagation of the target's score. Gradient,
/// guided backprop and deconvnet differ only in the rule (as Captum's GuidedBackprop and
/// Deconvolution share one class).
/// </summary>
public abstract class RectifiedGradient(RectifierRule rule) : AttributionMethod
{
    public RectifierRule Rule { get; } = rule;

    public override Attributions Attribute(ExplainContext context, Tensor inputs) => new(context.Gradients(inputs, Rule), Report(context));

    public override Attributions SummedAttribute(ExplainContext context, Tensor inputs) => new(context.SummedGradient(inputs, Rule), Report(context));

    private Dictionary<string, object> Report(ExplainContext context) => Rule == RectifierRule.Gradient ? [] : RuleReport(context);

    /// <summary>
    /// How many rectifiers the rule acts on; in a model without any (GELU transformers, SiLU
    /// networks) the map is the plain gradient, and the answer says so rather than pretending.
    /// </summary>
    public static Dictionary<string, object> RuleReport(ExplainContext context)
    {
        var count = context.Model.Mirror.RectifierOutputs.Count;
        var report = new Dictionary<string, object> { ["rectifiers"] = count };
        if (count == 0)
            report["note"] = "The model has no rectifiers (Relu, or Clip with min 0), so this rule changes nothing: the map equals the gradient's.";
        return report;
    }
}

/// <summary>The plain input gradient (saliency, Simonyan et al.).</summary>
public sealed class Gradient() : RectifiedGradient(RectifierRule.Gradient)
{
    public const string MethodName = "gradient";
    public override string Name => MethodName;
    public override int Order => 1;
}

/// <summary>Guided backpropagation (Springenberg et al.): rectifiers pass only positive gradients where the input was positive.</summary>
public sealed class GuidedBackprop() : RectifiedGradient(RectifierRule.GuidedBackprop)
{
    public const string MethodName = "guided-backprop";
    public override string Name => MethodName;
    public override int Order => 0;
    public override RenderOptions RenderDefaults => RenderOptions.Picture;
}

/// <summary>Deconvnet (Zeiler and Fergus): rectifiers pass positive gradients whatever the input was.</summary>
public sealed class Deconvnet() : RectifiedGradient(RectifierRule.Deconvnet)
{
    public override string Name => "deconvnet";
    public override int Order => 2;
    public override RenderOptions RenderDefaults => RenderOptions.Picture;
}
