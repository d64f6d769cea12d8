using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// (x − baseline) × the mean gradient along the straight path from a zero baseline (in
/// model-input space) to x, by the Riemann midpoint rule; all steps go through the mirror as
/// batches, not one pass per step.
/// </summary>
public static class IntegratedGradients
{
    public const int MaxSteps = 1024;

    public static AttributionMap Attribute(ExplainContext context, int steps)
    {
        if (steps is < 1 or > MaxSteps) throw ProblemException.BadRequest($"steps must be 1–{MaxSteps}.");
        var alphas = arange(steps, ScalarType.Float32).add(0.5).div(steps);
        var shape = new long[context.Input.dim()];
        Array.Fill(shape, 1L);
        shape[0] = steps;
        var path = context.Input * alphas.reshape(shape); // baseline 0 + α·(x − 0)
        var meanGradient = context.Gradients(path, RectifierRule.Gradient).mean([0], keepdim: true);
        return context.Result(AttributionMethod.IntegratedGradients, (context.Input * meanGradient)[0],
            new Dictionary<string, object> { ["steps"] = steps, ["baseline"] = "zero" });
    }
}
