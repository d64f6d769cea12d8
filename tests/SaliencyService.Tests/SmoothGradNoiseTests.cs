using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Attribution.Methods;
using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// SmoothGrad's noise is PyTorch's for the same seed: a user can reproduce a map with
/// <c>torch.Generator().manual_seed(seed)</c> (reference: tools/reference/smoothgrad_noise.py, PyTorch
/// 1.13: 25 noisy copies of a [1, 3, 4, 5] sample, drawn in one fill).
/// </summary>
public sealed class SmoothGradNoiseTests
{
    private const int Seed = 11, Samples = 25;
    private const double Noise = 0.15;

    private static readonly FloatTensor X = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("noise", "x.npy")), long.MaxValue);
    private static readonly FloatTensor Noisy = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("noise", $"noisy.seed{Seed}.npy")), long.MaxValue);

    [Fact]
    public void Noisy_copies_are_the_sample_plus_pytorchs_draws_for_the_seed()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        var sample = tensor(X.Data, X.Shape);
        var sigma = Noise * (sample.max().item<float>() - sample.min().item<float>());
        using var generator = new Generator(Seed);

        var noisy = NoiseTunnel.NoisyCopies(sample, Samples, sigma, generator);

        Assert.Equal(Noisy.Shape, noisy.shape);
        var actual = noisy.data<float>().ToArray();
        for (var i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - Noisy.Data[i]) <= 1e-6 * (1 + Math.Abs(Noisy.Data[i])), $"element {i}: {actual[i]} vs PyTorch's {Noisy.Data[i]}");
        // The generator moves on: the next copies are new draws, not the same noise again.
        Assert.NotEqual(actual, NoiseTunnel.NoisyCopies(sample, Samples, sigma, generator).data<float>().ToArray());
    }

    /// <summary>
    /// The map averages the gradients at PyTorch's noisy copies, though the service draws and
    /// explains them a chunk at a time. The model's score is Σ W[:, t]·x², so its gradient at a copy
    /// is 2·W[:, t]·copy, and the mean gradient is 2·W[:, t]·(the copies' mean). Its input takes no
    /// batch, so the copies go through the engine one by one while their noise is drawn 16 at a time.
    /// </summary>
    [Fact]
    public void A_smoothgrad_map_is_the_mean_gradient_at_pytorchs_noisy_copies_for_the_seed()
    {
        const int values = 60, classes = 2;
        var w = Parity.RandomInput([values * classes], 5, -1, 1);
        var model = new OnnxTestModel(13, [1, 3, 4, 5])
            .Node("Mul", ["x", "x"], ["squared"])
            .Node("Flatten", ["squared"], ["flat"])
            .Initializer("w", w, values, classes)
            .Node("MatMul", ["flat", "w"], ["y"])
            .Output("y");
        model.WithFile(path =>
        {
            var (analysed, _, onnx, _) = FixtureExplainers.Analyse(path, true, new Preprocessing("x", "NCHW", 4, 5, "RGB", 1, [0, 0, 0], [1, 1, 1]));
            using var owned = onnx;
            using var explainer = analysed!;
            var request = new ExplainRequest(AttributionMethods.Get("smoothgrad"), Samples: Samples, Noise: Noise, Seed: Seed,
                Base: AttributionMethods.Get("gradient"));

            var map = Explainer.Explain(explainer, X, request, null, "NCHW");

            var t = map.Target;
            var scores = Enumerable.Range(0, classes).Select(c => Enumerable.Range(0, values).Sum(i => (double)w[i * classes + c] * X.Data[i] * X.Data[i])).ToArray();
            Assert.Equal(Array.IndexOf(scores, scores.Max()), t);
            var expected = Enumerable.Range(0, values)
                .Select(i => 2 * w[i * classes + t] * Enumerable.Range(0, Samples).Average(s => (double)Noisy.Data[s * values + i])).ToArray();
            var scale = expected.Max(Math.Abs);
            var error = expected.Zip(map.Map, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(error <= 1e-5 * scale, $"max abs error {error} vs max |expected| {scale}");
        });
    }
}
