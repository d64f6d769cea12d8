using SaliencyService.Explain.Attribution.Methods;
using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// SmoothGrad's noise is PyTorch's for the same seed: a user can reproduce a map with
/// <c>torch.Generator().manual_seed(seed)</c> (reference: tools/reference/smoothgrad_noise.py, PyTorch 1.13).
/// </summary>
public sealed class SmoothGradNoiseTests
{
    [Fact]
    public void Noisy_copies_are_the_sample_plus_pytorchs_draws_for_the_seed()
    {
        TorchNativeLoader.EnsureLoaded();
        var x = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("noise", "x.npy")), long.MaxValue);
        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("noise", "noisy.seed11.npy")), long.MaxValue);
        using var scope = NewDisposeScope();
        var sample = tensor(x.Data, x.Shape);
        var sigma = 0.15 * (sample.max().item<float>() - sample.min().item<float>());
        using var generator = new Generator(11);

        var noisy = NoiseTunnel.NoisyCopies(sample, 3, sigma, generator);

        Assert.Equal(expected.Shape, noisy.shape);
        var actual = noisy.data<float>().ToArray();
        for (var i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected.Data[i]) <= 1e-6 * (1 + Math.Abs(expected.Data[i])), $"element {i}: {actual[i]} vs PyTorch's {expected.Data[i]}");
        // The generator moves on: the next copies are new draws, not the same noise again.
        Assert.NotEqual(actual, NoiseTunnel.NoisyCopies(sample, 3, sigma, generator).data<float>().ToArray());
    }
}
