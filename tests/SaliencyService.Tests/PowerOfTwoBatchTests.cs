using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// Where the engine keeps a session per batch size (the CUDA provider's: each session plans its
/// convolutions for one shape), a batch below MaxBatch holds a power of two samples, so a model
/// gets a handful of sessions whatever the step and sample counts asked for.
/// </summary>
public sealed class PowerOfTwoBatchTests
{
    private const int Values = 60, Classes = 2;
    private static readonly float[] W = Parity.RandomInput([Values * Classes], 7, -1, 1);
    private static readonly FloatTensor X = new(Parity.RandomInput([Values], 8, -1, 1), [1, 3, 4, 5]);

    /// <summary>
    /// The score Σ W[:, t]·x²: its gradient at α·x is 2α·W[:, t]·x, so integrated gradients by the
    /// midpoint rule (the α's mean is ½) is W[:, t]·x² exactly, however the steps are batched.
    /// </summary>
    [Theory]
    [InlineData(true, new long[] { 16, 16, 8, 4, 1 })]
    [InlineData(false, new long[] { 16, 16, 13 })]
    public void Integrated_gradients_of_45_steps_runs_batches_of_16_then_the_rest(bool powerOfTwo, long[] batches)
    {
        var (map, seen) = Explain(new ExplainRequest(AttributionMethods.Get("integrated-gradients"), Steps: 45), powerOfTwo);
        Assert.Equal(batches, seen);
        var t = map.Target;
        var expected = Enumerable.Range(0, Values).Select(i => (double)W[i * Classes + t] * X.Data[i] * X.Data[i]).ToArray();
        Assert.Equal(Values, map.Map.Length);
        var scale = expected.Max(Math.Abs);
        var error = expected.Zip(map.Map, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(error <= 1e-5 * scale, $"max abs error {error} vs max |expected| {scale}");
    }

    [Theory]
    [InlineData(true, new long[] { 16, 8, 1 })]
    [InlineData(false, new long[] { 16, 9 })]
    public void SmoothGrad_of_25_samples_runs_batches_of_16_then_powers_of_two(bool powerOfTwo, long[] batches)
    {
        var request = new ExplainRequest(AttributionMethods.Get("smoothgrad"), Samples: 25, Noise: 0.1, Seed: 3, Base: AttributionMethods.Get("gradient"));
        var (_, seen) = Explain(request, powerOfTwo);
        Assert.Equal(batches, seen);
    }

    private static (AttributionMap Map, List<long> Batches) Explain(ExplainRequest request, bool powerOfTwo)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = new OnnxTestModel(13, [-1, 3, 4, 5])
            .Node("Mul", ["x", "x"], ["squared"])
            .Node("Flatten", ["squared"], ["flat"])
            .Initializer("w", W, Values, Classes)
            .Node("MatMul", ["flat", "w"], ["y"])
            .Output("y")
            .Model();
        var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var engine = new RecordingEngine(new AutogradEngine(mirror));
        using var explainer = new ModelExplainer(mirror, [], null, engine, maxBatch: 16, powerOfTwoBatches: powerOfTwo);
        return (Explainer.Explain(explainer, X, request, null, "NCHW"), engine.Batches);
    }

    /// <summary>An engine that notes the size of every batch of gradients asked of it.</summary>
    private sealed class RecordingEngine(IGradientEngine inner) : IGradientEngine
    {
        public List<long> Batches { get; } = [];
        public string Name => inner.Name;

        public ForwardResult Forward(Tensor input, CancellationToken cancellationToken) => inner.Forward(input, cancellationToken);

        public Tensor InputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken)
        {
            Batches.Add(inputs.shape[0]);
            return inner.InputGradients(inputs, target, rule, cancellationToken);
        }

        public Tensor SummedInputGradients(Tensor inputs, TargetChoice target, RectifierRule rule, CancellationToken cancellationToken)
        {
            Batches.Add(inputs.shape[0]);
            return inner.SummedInputGradients(inputs, target, rule, cancellationToken);
        }

        public (Tensor Activation, Tensor Gradient) LayerGradient(Tensor input, string layer, TargetChoice target, CancellationToken cancellationToken) =>
            inner.LayerGradient(input, layer, target, cancellationToken);

        public void Dispose() => inner.Dispose();
    }
}
