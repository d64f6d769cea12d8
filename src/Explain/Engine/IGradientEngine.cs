using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>What one forward gives a method: the explained scores and the served output, [n, ...] flattened per sample.</summary>
public sealed record ForwardResult(Tensor Scores, Tensor Outputs);

/// <summary>
/// Which score a pass explains. <see cref="Choose"/> decides from the pass's forward; an engine that
/// chooses inside its graph starts from <see cref="Expected"/> (−1: the first sample's top score)
/// and runs again only where <see cref="Choose"/> then disagrees.
/// </summary>
public sealed record TargetChoice(long Expected, Func<ForwardResult, long> Choose)
{
    /// <summary>A target known before the pass.</summary>
    public static TargetChoice Fixed(long index) => new(index, _ => index);
}

/// <summary>
/// Computes a model's gradients; chosen once at import (<see cref="GradientEngineCheck"/>) and held
/// by the model, so attribution methods never ask which engine runs. Every call makes one forward
/// of its input and hands it to <c>target</c>, which picks the explained score from it (the first
/// forward of a request resolves the target; later ones keep it: <see cref="TargetChoice"/>). Call inside a dispose scope: the
/// forward's tensors and the results belong to it.
/// </summary>
public interface IGradientEngine : IDisposable
{
    /// <summary><see cref="GradientEngines.OnnxRuntime"/> or <see cref="GradientEngines.LibTorch"/> (metrics, logs).</summary>
    string Name { get; }

    /// <summary>The forward alone: for resolving the target before a method perturbs the input.</summary>
    ForwardResult Forward(Tensor input, CancellationToken cancellationToken);

    /// <summary>∂score[target]/∂input for every sample of <paramref name="inputs"/> ([n, ...]) under the rectifier rule.</summary>
    Tensor InputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken);

    /// <summary>
    /// The sum over the samples of <paramref name="inputs"/> of <see cref="InputGradients"/> ([1, ...]):
    /// all that a mean over samples needs, which an engine may compute in less work than each sample's.
    /// </summary>
    Tensor SummedInputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken) =>
        InputGradients(inputs, target, rule, cancellationToken).sum([0], keepdim: true);

    /// <summary>A layer's value and ∂score[target]/∂layer (Grad-CAM), for one sample.</summary>
    (Tensor Activation, Tensor Gradient) LayerGradient(Tensor input, string layer, TargetChoice target, CancellationToken cancellationToken);
}
