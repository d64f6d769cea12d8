using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Attribution.Methods;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The method registry (every method one class, found by name) and SmoothGrad as a NoiseTunnel
/// over any other method, checked against PyTorch's float64 maps of the wrapped method.
/// </summary>
public sealed class AttributionMethodsTests : IDisposable
{
    private const string Fixture = "mini_resnet";
    private readonly ModelExplainer _model;
    private readonly IDisposable _onnx;

    public AttributionMethodsTests()
    {
        var (explainer, _, onnx, _) = FixtureExplainers.Analyse(TestPaths.Fixture(Fixture, "model.onnx"), true, FixtureExplainers.Preprocessing(Fixture));
        (_model, _onnx) = (explainer!, onnx);
    }

    public void Dispose()
    {
        _model.Dispose();
        _onnx.Dispose();
    }

    [Fact]
    public void The_registry_holds_the_eight_methods_of_the_contract_guided_backprop_first()
    {
        string[] contract = ["guided-backprop", "gradient", "deconvnet", "input-x-gradient", "integrated-gradients", "smoothgrad", "grad-cam", "guided-grad-cam"];
        Assert.Equal(contract, AttributionMethods.Names);
        Assert.Same(AttributionMethods.Default, AttributionMethods.Parse(null));
        foreach (var name in contract) Assert.Equal(name, AttributionMethods.Parse(name.ToUpperInvariant()).Name);
        var unknown = Assert.Throws<InvalidArgumentException>(() => AttributionMethods.Parse("lime"));
        Assert.Contains("guided-grad-cam", unknown.Message);
        Assert.Equal(["grad-cam"], AttributionMethods.All.Where(m => m.IsCam).Select(m => m.Name));
        Assert.DoesNotContain("smoothgrad", NoiseTunnel.BaseNames);
        Assert.Equal(7, NoiseTunnel.BaseNames.Count());
    }

    [Fact]
    public void Cache_keys_follow_the_parameters_each_method_reads()
    {
        var ig = AttributionMethods.Get("integrated-gradients");
        var gradient = AttributionMethods.Get("gradient");
        var smooth = AttributionMethods.Get("smoothgrad");
        Assert.NotEqual(new ExplainRequest(ig, Steps: 10).CacheKey(), new ExplainRequest(ig, Steps: 20).CacheKey());
        Assert.Equal(new ExplainRequest(gradient, Steps: 10).CacheKey(), new ExplainRequest(gradient, Steps: 20).CacheKey());
        Assert.NotEqual(new ExplainRequest(gradient, Target: "1").CacheKey(), new ExplainRequest(gradient, Target: "2").CacheKey());
        Assert.Null(new ExplainRequest(smooth).CacheKey()); // random without a seed
        Assert.NotEqual(new ExplainRequest(smooth, Seed: 1, Base: ig, Steps: 10).CacheKey(), new ExplainRequest(smooth, Seed: 1, Base: ig, Steps: 20).CacheKey());
        Assert.NotEqual(new ExplainRequest(smooth, Seed: 1, Noise: 0.1).CacheKey(), new ExplainRequest(smooth, Seed: 1, Noise: 0.2).CacheKey());
        Assert.NotEqual(new ExplainRequest(smooth, Seed: 1, Base: ig).CacheKey(), new ExplainRequest(smooth, Seed: 1, Base: gradient).CacheKey());
    }

    [Theory]
    [InlineData("integrated-gradients", 0)]
    [InlineData("smoothgrad", 0)]
    [InlineData("smoothgrad", 100000)]
    public void Parameters_out_of_range_are_refused_before_any_work(string method, int count)
    {
        var request = new ExplainRequest(AttributionMethods.Get(method), Steps: count, Samples: count);
        Assert.Throws<InvalidArgumentException>(request.Validate);
        var nested = new ExplainRequest(AttributionMethods.Get("smoothgrad"), Base: AttributionMethods.Get("smoothgrad"));
        Assert.Throws<InvalidArgumentException>(nested.Validate);
        var badBase = new ExplainRequest(AttributionMethods.Get("smoothgrad"), Base: AttributionMethods.Get("integrated-gradients"), Steps: 0);
        Assert.Throws<InvalidArgumentException>(badBase.Validate);
    }

    /// <summary>Without noise, every sample is the input: SmoothGrad over a method is that method's map (PyTorch, float64).</summary>
    [Theory]
    [InlineData("gradient", "gradient", 1e-3)]
    [InlineData("guided-backprop", "guided_backprop", 1e-3)]
    [InlineData("input-x-gradient", "input_x_gradient", 1e-3)]
    [InlineData("grad-cam", "grad_cam", 1e-3)]
    [InlineData("guided-grad-cam", "guided_grad_cam", 1e-3)]
    [InlineData("integrated-gradients", "integrated_gradients", 2e-2)] // 50 steps against the converged integral
    public void SmoothGrad_without_noise_is_the_wrapped_method(string baseMethod, string reference, double tolerance)
    {
        var input = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(Fixture, "input0.tensor.npy")), long.MaxValue);
        var request = new ExplainRequest(AttributionMethods.Get("smoothgrad"), Samples: 3, Noise: 0, Seed: 7, Base: AttributionMethods.Get(baseMethod));
        var map = Explainer.Explain(_model, input, request, null, "NCHW");

        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(Fixture, $"input0.{reference}.npy")), long.MaxValue);
        Assert.Equal(expected.Shape, map.MapShape);
        var difference = Math.Sqrt(expected.Data.Zip(map.Map, (e, a) => (double)(e - a) * (e - a)).Sum());
        var norm = Math.Sqrt(expected.Data.Sum(e => (double)e * e));
        Assert.True(difference <= tolerance * norm, $"relative L2 {difference / norm}");
        Assert.Equal(baseMethod, map.Parameters["base"]);
        Assert.Equal(ReferenceCases.Get(Fixture, "input0").Target, map.Target);
    }

    /// <summary>SmoothGrad over integrated gradients: each noisy sample's attributions are complete, so their mean adds up to the mean score change.</summary>
    [Fact]
    public void SmoothGrad_over_integrated_gradients_is_the_mean_of_complete_attributions()
    {
        var input = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(Fixture, "input0.tensor.npy")), long.MaxValue);
        var ig = AttributionMethods.Get("integrated-gradients");
        var smooth = new ExplainRequest(AttributionMethods.Get("smoothgrad"), Samples: 4, Noise: 0.1, Seed: 3, Base: ig, Steps: 64);
        var map = Explainer.Explain(_model, input, smooth, null, "NCHW");
        var again = Explainer.Explain(_model, input, smooth, null, "NCHW");
        Assert.Equal(map.Map, again.Map); // the seed reproduces it
        Assert.Equal(64, map.Parameters["steps"]);

        var plain = Explainer.Explain(_model, input, new ExplainRequest(ig, Steps: 64), null, "NCHW");
        var c = ReferenceCases.Get(Fixture, "input0");
        var change = c.Score - c.BaselineScore;
        Assert.True(Math.Abs(plain.Map.Sum(v => (double)v) - change) <= 0.02 * Math.Abs(change));
        // Noise of 10% of the range moves the score a little: the sum stays near the change, and the map differs from the plain one.
        Assert.True(Math.Abs(map.Map.Sum(v => (double)v) - change) <= 0.25 * Math.Abs(change), $"sum {map.Map.Sum()} vs {change}");
        Assert.NotEqual(plain.Map, map.Map);
    }
}
