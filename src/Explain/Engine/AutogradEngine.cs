using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>Gradients by libtorch autograd through the float32 mirror (the rectifier rules are its custom backward).</summary>
public sealed class AutogradEngine(GraphMirror mirror) : IGradientEngine
{
    public string Name => GradientEngines.LibTorch;

    public ForwardResult Forward(Tensor input, CancellationToken cancellationToken)
    {
        using var noGrad = no_grad();
        return Result(mirror.Forward(input, RectifierRule.Gradient, cancellationToken), input.shape[0]);
    }

    public Tensor InputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken) =>
        // The forward handed to target belongs to the caller's scope, as ONNX Runtime's recorded values do.
        mirror.InputGradients(inputs, values => target.Choose(Kept(Result(values, inputs.shape[0]))), rule, cancellationToken);

    public (Tensor Activation, Tensor Gradient) LayerGradient(Tensor input, string layer, TargetChoice target,
        CancellationToken cancellationToken)
    {
        using var grad = enable_grad();
        var values = mirror.Forward(input.detach().requires_grad_(), RectifierRule.Gradient, cancellationToken);
        var activation = values[layer];
        var score = values[mirror.ScoreName].reshape(1, -1)[0, target.Choose(Result(values, 1))];
        return (activation.detach(), autograd.grad([score], [activation])[0]);
    }

    /// <summary>The mirror is the model's, not this engine's: disposed with the model.</summary>
    public void Dispose()
    {
    }

    private static ForwardResult Kept(ForwardResult forward) =>
        new(forward.Scores.MoveToOuterDisposeScope(), forward.Outputs.MoveToOuterDisposeScope());

    private ForwardResult Result(IReadOnlyDictionary<string, Tensor> values, long samples) =>
        new(values[mirror.ScoreName].detach().reshape(samples, -1), values[mirror.OutputName].detach().reshape(samples, -1));
}
