using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution.Methods;

/// <summary>
/// (x − baseline) × the mean gradient along the straight path from a zero baseline (in model-input
/// space) to x, by the Riemann midpoint rule; each sample's steps go through the engine as batches,
/// not one pass per step, and only one batch of the path exists at a time.
/// </summary>
public sealed class IntegratedGradients : AttributionMethod
{
    public const int MaxSteps = 1024;

    private static readonly MethodParameter Steps = new("steps", r => r.Steps);

    public override string Name => "integrated-gradients";
    public override int Order => 4;
    public override IReadOnlyList<MethodParameter> Parameters => [Steps];

    public override void Validate(ExplainRequest request)
    {
        if (request.Steps is < 1 or > MaxSteps) throw new InvalidArgumentException($"steps must be 1–{MaxSteps}.");
    }

    public override Attributions Attribute(ExplainContext context, Tensor inputs)
    {
        var steps = context.Request.Steps;
        var alphas = Scalars.Range(steps, ScalarType.Float32).Plus(0.5).Over(steps);
        var shape = Enumerable.Repeat(1L, (int)inputs.dim()).ToArray();
        shape[0] = -1;
        // One sample's path at a time, made a batch of steps at a time (baseline 0 + α·(x − 0)):
        // the whole path of a large input would not fit, let alone a SmoothGrad batch of them.
        var maps = ExplainContext.Samples(inputs).Select(x =>
            x * context.MeanGradient(steps, (start, size) => x * alphas.narrow(0, start, size).reshape(shape), RectifierRule.Gradient)).ToList();
        return new(cat(maps, 0), new Dictionary<string, object> { ["steps"] = steps, ["baseline"] = "zero" });
    }
}
