using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;
using FloatTensor = SaliencyService.Explain.Tensors.FloatTensor;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// Back-propagates the target's pre-softmax score to the input, with the rectifier rule of the
/// method: gradient (true gradients), guided backprop and deconvnet (modified rectifiers).
/// </summary>
public static class GradientAttribution
{
    /// <param name="input">One sample, with its batch dimension of 1.</param>
    /// <param name="target">Class index, label, or null for the top-1 of the score.</param>
    /// <param name="labels">The model's labels, to resolve a label target.</param>
    public static AttributionMap Explain(ModelExplainer model, FloatTensor input, AttributionMethod method, string? target, IReadOnlyList<string>? labels)
    {
        var rule = method switch
        {
            AttributionMethod.GuidedBackprop => RectifierRule.GuidedBackprop,
            AttributionMethod.Deconvnet => RectifierRule.Deconvnet,
            _ => RectifierRule.Gradient,
        };
        using var scope = NewDisposeScope();
        var x = tensor(input.Data, input.Shape).requires_grad_();
        var values = model.Mirror.Forward(x, rule);
        var scores = values[model.Mirror.ScoreName].reshape(1, -1);
        var outputs = values[model.Mirror.OutputName].detach().reshape(-1).data<float>().ToArray();

        var index = Targets.Resolve(target, labels, scores);
        var score = scores[0, index];
        score.backward();
        var map = x.grad!.reshape(-1).data<float>().ToArray();
        return new AttributionMap(method, map, input.Shape[1..], index, score.item<float>(), outputs);
    }
}
