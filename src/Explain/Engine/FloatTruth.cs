using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
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
/// It is the import's longest step, so it starts on its own thread as soon as the probe input is
/// known, while the float32 mirror, its parity probe and ONNX Runtime's backward are made.
/// </summary>
public sealed class FloatTruth : IDisposable
{
    private readonly Task<Pass> _pass;
    private readonly TaskCompletionSource<Dictionary<string, TensorInfo>> _shapes = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The float64 mirror, the explained target and the probe's input gradient; the tensors are owned here.</summary>
    public sealed record Pass(GraphMirror Reference, long Target, Tensor Gradient);

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
                _shapes.TrySetException(e);
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
    /// The shapes of the pass's forward on the probe (<see cref="GraphMirror.ShapesOf"/>; float64
    /// where the model computes float32), known before its backward ends: beside a forward on the
    /// batch of two, they tell which dimensions follow the batch
    /// (<see cref="GraphMirror.BatchShapes(IReadOnlyDictionary{string, TensorInfo}, IReadOnlyDictionary{string, TensorInfo})"/>).
    /// </summary>
    public Task<Dictionary<string, TensorInfo>> Shapes => _shapes.Task;

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
                    truth._shapes.TrySetResult(reference.ShapesOf(values));
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
