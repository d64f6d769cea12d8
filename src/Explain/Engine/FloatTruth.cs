using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Tensors;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// What an import judges gradient engines by (<see cref="GradientEngineCheck"/>): libtorch autograd
/// through a float64 mirror of the model, which no float32 kernel (oneDNN's included) takes part
/// in. One pass on the probe: guided backprop exercises every rectifier's gate and positive part.
/// The target is the probe's top score (an open path through the network), taken from the pass's
/// own forward. Where the model takes batches, the engines are run on a batch of two, the probe and
/// its mirror image (<see cref="Input"/>): the probe's row is judged by this pass, the second by the
/// engine's own pass on that sample alone, so batching is checked without a second float64 sample.
/// It starts on its own thread as soon as the probe input is known, while the float32 mirror and
/// ONNX Runtime's backward are made; its forward also serves the import's parity check, Grad-CAM
/// layers and value shapes (<see cref="Forward"/>), so the float32 mirror runs no forward there.
/// </summary>
public sealed class FloatTruth : IDisposable
{
    private readonly Task<Pass> _pass;
    private readonly TaskCompletionSource<ProbeForward> _forward = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The float64 mirror, the explained target and the probe's input gradient; the tensors are owned here.</summary>
    public sealed record Pass(GraphMirror Reference, long Target, Tensor Gradient);

    /// <summary>
    /// What the pass's forward on the probe gives before its backward ends: the shape of every
    /// value (<see cref="GraphMirror.ShapesOf"/>; float64 where the model computes float32) and the
    /// served output's values (the parity check's).
    /// </summary>
    public sealed record ProbeForward(Dictionary<string, TensorInfo> Shapes, float[] Output);

    private FloatTruth(Tensor input, bool batched, Func<FloatTruth, Pass> pass)
    {
        Input = input;
        Batched = batched;
        _pass = Task.Run(() =>
        {
            try
            {
                return pass(this);
            }
            catch (Exception e)
            {
                _forward.TrySetException(e);
                throw;
            }
        });
    }

    /// <summary>The rule of the checked pass: that of the backward ONNX Runtime's backprop builds first.</summary>
    public const RectifierRule Rule = OrtBackprop.FirstRule;

    /// <summary>
    /// The input engines are checked on (owned here): the probe, then its mirror image where the
    /// model takes batches. At hand at once, so an engine can run on it while the truth is computed.
    /// </summary>
    public Tensor Input { get; }

    /// <summary>Whether <see cref="Input"/> is the batch of two (the model takes batches), not the probe alone.</summary>
    public bool Batched { get; }

    /// <summary>The probe, the input the truth is computed for: <see cref="Input"/>'s first sample in the batch of two, else all of it.</summary>
    public Tensor Probe => Batched ? Input.narrow(0, 0, 1) : Input.alias();

    /// <summary>
    /// The pass's forward on the probe, known before its backward ends: its shapes, beside a
    /// forward's on the batch of two, tell which dimensions follow the batch
    /// (<see cref="GraphMirror.BatchShapes(IReadOnlyDictionary{string, TensorInfo}, IReadOnlyDictionary{string, TensorInfo})"/>).
    /// </summary>
    public Task<ProbeForward> Forward => _forward.Task;

    /// <param name="probe">The probe input (read, not kept): one sample, or the model's fixed batch.</param>
    public static FloatTruth Start(ModelProto model, string inputName, string outputName, Tensor probe, bool batched)
    {
        var input = (batched ? cat([probe, probe.flip(-1)], 0) : probe.clone()).DetachFromDisposeScope();
        return new FloatTruth(input, batched, truth =>
        {
            var build = GraphMirror.Build(model, inputName, outputName, ScalarType.Float64);
            var reference = build.Mirror
                            ?? throw new InvalidOperationException("The float64 mirror could not be built: " + string.Join("; ", build.UnsupportedOperators));
            try
            {
                long target = 0;
                using var probeInput = truth.Probe;
                var gradient = reference.InputGradients(probeInput, values =>
                {
                    truth._forward.TrySetResult(new ProbeForward(reference.ShapesOf(values), TensorCopy.Floats(values[outputName])));
                    return target = values[reference.ScoreName].reshape(probeInput.shape[0], -1)[0].argmax().item<long>();
                }, Rule);
                return new Pass(reference, target, gradient);
            }
            catch
            {
                reference.Dispose();
                throw;
            }
        });
    }

    /// <summary>The pass, once computed.</summary>
    /// <exception cref="Exception">What the pass failed with.</exception>
    public Pass Result => _pass.GetAwaiter().GetResult();

    public void Dispose()
    {
        try
        {
            _pass.Wait();
            _pass.Result.Gradient.Dispose();
            _pass.Result.Reference.Dispose();
        }
        catch (AggregateException)
        {
            // A failed pass owns nothing.
        }
        finally
        {
            Input.Dispose();
        }
    }
}
