using System.Net;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// NaN and ±Inf: an input tensor holding one is the client's mistake (400); a model that computes
/// one has no answer to give (422, naming it). Never a 500 from the JSON writer, never a blank map.
/// </summary>
public sealed class NonFiniteTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    [Theory]
    [InlineData(float.NaN, "predict")]
    [InlineData(float.PositiveInfinity, "predict")]
    [InlineData(float.NaN, "explain?format=json")]
    [InlineData(float.NegativeInfinity, "explain?format=npy")]
    public async Task A_tensor_with_a_non_finite_value_is_a_400(float value, string route)
    {
        var data = Parity.RandomInput([1, 64, 64, 3], 1, 0, 1);
        data[123] = value;
        using var form = Http.TensorForm(Npy.Write(data, [1, 64, 64, 3]));
        var detail = await Http.AssertProblemAsync(await service.Client.PostAsync($"/v1/models/seed_cnn/{route}", form), HttpStatusCode.BadRequest);
        Assert.Contains("index 123", detail);
    }

    [Theory]
    [InlineData("predict")]
    [InlineData("explain?method=gradient&format=json")]
    public async Task A_model_that_computes_a_non_finite_value_is_a_422(string route)
    {
        // log of a negative number is NaN: a model that answers some inputs with NaN.
        var model = new OnnxTestModel(13, [1, 3, 4, 4])
            .Initializer("w", Parity.RandomInput([3 * 3 * 3 * 3], 2, 0.1f, 0.5f), 3, 3, 3, 3)
            .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
            .Node("Relu", ["c"], ["r"])
            .Node("GlobalAveragePool", ["r"], ["g"])
            .Node("Flatten", ["g"], ["f"])
            .Node("Log", ["f"], ["y"])
            .Output("y");
        using var client = service.Factory.CreateClient();
        using (var upload = Http.ModelForm(model.Bytes(), "logs"))
        {
            var imported = await client.PostAsync("/v1/models?replace=true", upload);
            Assert.True(imported.IsSuccessStatusCode, await imported.Content.ReadAsStringAsync());
        }
        using var form = Http.TensorForm(Npy.Write(Enumerable.Repeat(-1f, 48).ToArray(), [1, 3, 4, 4]));
        var detail = await Http.AssertProblemAsync(await client.PostAsync($"/v1/models/logs/{route}", form), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("non-finite", detail);
    }

    [Fact]
    public void The_first_non_finite_value_is_found_wherever_it_is_and_finite_extremes_are_not()
    {
        var random = new Random(3);
        foreach (var length in new[] { 0, 1, 7, 8, 31, 33, 1000 })
        {
            float[] finite = [.. Enumerable.Range(0, length).Select(i => (i % 4) switch
            {
                0 => float.MaxValue, 1 => -float.Epsilon, 2 => float.MinValue, _ => (float)random.NextDouble(),
            })];
            Assert.Equal(-1, SaliencyService.Api.Inference.NonFinite.IndexOf(finite));
            Assert.Equal(-1, SaliencyService.Api.Inference.NonFinite.IndexOf(finite.Select(v => (double)v).ToArray()));
            for (var at = 0; at < length; at += Math.Max(1, length / 5))
                foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                {
                    var floats = (float[])finite.Clone();
                    floats[at] = bad;
                    if (at + 3 < length) floats[at + 3] = float.NaN; // a later one does not hide the first
                    Assert.Equal(at, SaliencyService.Api.Inference.NonFinite.IndexOf(floats));
                    Assert.Equal(at, SaliencyService.Api.Inference.NonFinite.IndexOf(floats.Select(v => (double)v).ToArray()));
                }
        }
        Assert.Equal(-1, SaliencyService.Api.Inference.NonFinite.IndexOf(new[] { 1, 2, 3 }));
    }
}
