using SaliencyService.Explain.Engine;
using static TorchSharp.torch;
using FloatTensor = SaliencyService.Explain.Tensors.FloatTensor;

namespace SaliencyService.Explain.Attribution;

/// <summary>Runs one explanation request inside its own libtorch dispose scope.</summary>
public static class Explainer
{
    /// <param name="input">One sample with its batch dimension of 1.</param>
    /// <param name="layout">The model's layout (NCHW or NHWC), for per-channel products and the map's size.</param>
    public static AttributionMap Explain(ModelExplainer model, FloatTensor input, ExplainRequest request,
        IReadOnlyList<string>? labels, string layout, CancellationToken cancellationToken = default)
    {
        request.Validate();
        using var scope = NewDisposeScope();
        var context = new ExplainContext(model, request, Tensors.TensorCopy.ToTensor(input), layout == "NHWC", labels, cancellationToken);
        var (maps, parameters) = request.Method.Attribute(context, context.Input);
        var map = maps[0];
        return new AttributionMap(request.Method, Tensors.TensorCopy.Floats(map), map.shape, context.Target, context.Score,
            context.Outputs, parameters);
    }
}
