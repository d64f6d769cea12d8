using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// What an import judges gradient engines by (<see cref="GradientEngineCheck"/>): libtorch autograd
/// through a float64 mirror of the model, which no float32 kernel (oneDNN's included) takes part
/// in. One pass: guided backprop exercises every gate and floor of a backward, and a batch of two
/// (the probe and its mirror image) where the model takes batches exercises batching. The target
/// is the first sample's top score (an open path through the network), taken from the pass's own
/// forward. It is the import's longest step, so it starts on its own thread as soon as the mirror
/// is built, while the parity probe and ONNX Runtime's backward are made.
/// </summary>
public sealed class FloatTruth : IDisposable
{
    private readonly Task<Pass> _pass;

    /// <summary>The float64 mirror, the checked input, the explained target and its input gradient; the tensors are owned here.</summary>
    public sealed record Pass(GraphMirror Reference, Tensor Input, long Target, Tensor Gradient);

    private FloatTruth(Task<Pass> pass) => _pass = pass;

    /// <summary>The rule of the checked pass.</summary>
    public static RectifierRule Rule => RectifierRule.GuidedBackprop;

    /// <param name="probe">[1, ...]: the probe input (read, not kept).</param>
    public static FloatTruth Start(ModelProto model, GraphMirror mirror, Tensor probe, bool batched)
    {
        var input = (batched ? cat([probe, probe.flip(-1)], 0) : probe.clone()).DetachFromDisposeScope();
        var (inputName, outputName) = (mirror.InputName, mirror.OutputName);
        return new FloatTruth(Task.Run(() =>
        {
            var build = GraphMirror.Build(model, inputName, outputName, ScalarType.Float64);
            var reference = build.Mirror;
            if (reference is null)
            {
                input.Dispose();
                throw new InvalidOperationException("The float64 mirror could not be built: " + string.Join("; ", build.UnsupportedOperators));
            }
            try
            {
                long target = 0;
                var gradient = reference.InputGradients(input,
                    values => target = values[reference.ScoreName].reshape(input.shape[0], -1)[0].argmax().item<long>(), Rule);
                return new Pass(reference, input, target, gradient);
            }
            catch
            {
                reference.Dispose();
                input.Dispose();
                throw;
            }
        }));
    }

    /// <summary>The pass, once computed.</summary>
    /// <exception cref="Exception">What the pass failed with.</exception>
    public Pass Result => _pass.GetAwaiter().GetResult();

    public void Dispose()
    {
        try
        {
            _pass.Wait();
        }
        catch (AggregateException)
        {
            return; // (a failed pass owns nothing)
        }
        var (reference, input, _, gradient) = _pass.Result;
        gradient.Dispose();
        input.Dispose();
        reference.Dispose();
    }
}
