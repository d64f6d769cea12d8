using Microsoft.Extensions.DependencyInjection;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Inputs;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The explain service without HTTP: a tensor handed in directly, through the lease, the queue,
/// the cache and the engine, against PyTorch's float64 maps.
/// </summary>
public sealed class ExplainServiceTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private ExplainService Explain => service.Factory.Services.GetRequiredService<ExplainService>();

    private static ExplainService.InputSource Tensor(string fixture, string stem) =>
        (_, _) => Task.FromResult(new ModelInput(Npy.Read(File.ReadAllBytes(TestPaths.Fixture(fixture, $"{stem}.tensor.npy")), long.MaxValue)));

    [Fact]
    public async Task A_map_is_computed_then_served_from_the_cache()
    {
        var c = ReferenceCases.Get("seed_cnn", "input1");
        var request = new ExplainRequest(AttributionMethods.Get("input-x-gradient"), Target: c.Target.ToString());
        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input1.input_x_gradient.npy")), long.MaxValue).Data;

        float[] first;
        using (var computed = await Explain.ExplainAsync("seed_cnn", Tensor("seed_cnn", "input1"), request, CancellationToken.None))
        {
            Assert.False(computed.Cached);
            Assert.Equal(c.Target, computed.Map.Target);
            Assert.Equal(c.Score, computed.Map.Score, 1e-3 * Math.Max(1, Math.Abs(c.Score)));
            var scale = expected.Max(Math.Abs);
            Assert.True(expected.Zip(computed.Map.Map, (e, a) => Math.Abs(e - a)).Max() <= 1e-3 * scale);
            first = computed.Map.Map;
        }
        using var cached = await Explain.ExplainAsync("seed_cnn", Tensor("seed_cnn", "input1"), request, CancellationToken.None);
        Assert.True(cached.Cached);
        Assert.Equal(first, cached.Map.Map);
    }

    [Fact]
    public async Task Bad_requests_fail_with_the_engines_types_before_the_input_is_read()
    {
        var read = false;
        ExplainService.InputSource spy = (_, _) =>
        {
            read = true;
            return Task.FromResult(new ModelInput(new FloatTensor(new float[1], [1])));
        };
        var tooManySteps = new ExplainRequest(AttributionMethods.Get("integrated-gradients"), Steps: 0);
        await Assert.ThrowsAsync<InvalidArgumentException>(() => Explain.ExplainAsync("seed_cnn", spy, tooManySteps, CancellationToken.None));
        var missing = await Assert.ThrowsAsync<ProblemException>(() =>
            Explain.ExplainAsync("no-such-model", spy, new ExplainRequest(AttributionMethods.Default), CancellationToken.None));
        Assert.Equal(404, missing.StatusCode);
        Assert.False(read);

        var badTarget = new ExplainRequest(AttributionMethods.Default, Target: "999");
        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => Explain.ExplainAsync("seed_cnn", Tensor("seed_cnn", "input0"), badTarget, CancellationToken.None));
        Assert.Equal(400, Problems.Describe(e).Status);
    }

    [Fact]
    public async Task A_batch_from_any_source_is_refused()
    {
        var one = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), long.MaxValue);
        var two = new FloatTensor([.. one.Data, .. one.Data], [2, .. one.Shape[1..]]);
        var e = await Assert.ThrowsAsync<ProblemException>(() => Explain.ExplainAsync("seed_cnn",
            (_, _) => Task.FromResult(new ModelInput(two)), new ExplainRequest(AttributionMethods.Default), CancellationToken.None));
        Assert.Equal(400, e.StatusCode);
    }
}
