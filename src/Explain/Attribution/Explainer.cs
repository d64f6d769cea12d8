using SaliencyService.Explain.Engine;
using static TorchSharp.torch;
using FloatTensor = SaliencyService.Explain.Tensors.FloatTensor;

namespace SaliencyService.Explain.Attribution;

/// <summary>Runs one explanation request inside its own libtorch dispose scope.</summary>
public static class Explainer
{
    /// <param name="input">One sample with its batch dimension of 1.</param>
    /// <param name="layout">The model's layout (NCHW or NHWC), for per-channel products.</param>
    /// <param name="maxBatch">Most samples per mirror pass for integrated gradients and SmoothGrad.</param>
    public static AttributionMap Explain(ModelExplainer model, FloatTensor input, ExplainRequest request,
        IReadOnlyList<string>? labels, string layout, int maxBatch, CancellationToken cancellationToken = default)
    {
        using var scope = NewDisposeScope();
        var context = new ExplainContext(model, tensor(input.Data, input.Shape), request.Target, labels, maxBatch, cancellationToken);
        var (height, width) = layout == "NHWC" ? (input.Shape[1], input.Shape[2]) : (input.Shape[^2], input.Shape[^1]);
        string Layer() => request.Layer ?? model.DefaultLayer
                          ?? throw ProblemException.Unprocessable("The model has no 4-D activation for Grad-CAM.");
        return request.Method switch
        {
            AttributionMethod.Gradient or AttributionMethod.GuidedBackprop or AttributionMethod.Deconvnet =>
                GradientAttribution.Attribute(context, request.Method),
            AttributionMethod.InputXGradient => InputXGradient.Attribute(context),
            AttributionMethod.IntegratedGradients => IntegratedGradients.Attribute(context, request.Steps),
            AttributionMethod.SmoothGrad => SmoothGrad.Attribute(context, request.Samples, request.Noise, request.Seed, request.Base),
            AttributionMethod.GradCam => GradCam.Attribute(context, Layer(), (height, width)),
            AttributionMethod.GuidedGradCam => GradCam.AttributeGuided(context, Layer(), (height, width), layout == "NHWC"),
            _ => throw new ArgumentOutOfRangeException(nameof(request)),
        };
    }
}
