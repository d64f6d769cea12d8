using System.Globalization;
using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Explain over HTTP against the PyTorch (float64) reference maps of every fixture case.</summary>
public sealed class ExplainApiTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    public static IEnumerable<object[]> Maps =>
        from c in ReferenceCases.All
        from method in new[]
        {
            ("guided-backprop", "guided_backprop"), ("gradient", "gradient"), ("deconvnet", "deconvnet"),
            ("input-x-gradient", "input_x_gradient"), ("grad-cam", "grad_cam"), ("guided-grad-cam", "guided_grad_cam"),
        }
        from input in new[] { "tensor", "image" }
        select new object[] { c.Model, c.Stem, method.Item1, method.Item2, input };

    [Theory]
    [MemberData(nameof(Maps))]
    public async Task Npy_maps_match_the_reference(string model, string stem, string method, string reference, string input)
    {
        using var form = input == "tensor"
            ? Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")))
            : Http.ImageForm(TestPaths.Fixture(model, stem + ".png"));
        var response = await Client.PostAsync($"/v1/models/{model}/explain?method={method}&format=npy", form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());

        var body = await response.Content.ReadAsByteArrayAsync();
        ReferenceMaps.AssertMatches(model, $"{stem}.{reference}.npy", body);
        Assert.Equal("application/x-npy", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(body.Length, response.Content.Headers.ContentLength);
        Assert.Equal("attachment", response.Content.Headers.ContentDisposition?.DispositionType);
        Assert.Equal($"{model}.{method}.npy", response.Content.Headers.ContentDisposition?.FileNameStar);

        var c = ReferenceCases.Get(model, stem);
        Assert.Equal(c.Target.ToString(CultureInfo.InvariantCulture), response.Headers.GetValues("X-Explain-Target").Single());
        Assert.Equal(c.Score, double.Parse(response.Headers.GetValues("X-Explain-Score").Single(), CultureInfo.InvariantCulture), 3);
    }

    public static IEnumerable<object[]> Cases => ReferenceCases.AsTheoryData();

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Integrated_gradients_converge_and_are_complete(string model, string stem)
    {
        var c = ReferenceCases.Get(model, stem);
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")));
        var response = await Client.PostAsync($"/v1/models/{model}/explain?method=integrated-gradients&steps=50&format=npy", form);
        var actual = Npy.Read(await Http.ReadBytesAsync(response), long.MaxValue).Data;
        var converged = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".integrated_gradients.npy")), long.MaxValue).Data;

        var difference = Math.Sqrt(actual.Zip(converged, (a, r) => (double)(a - r) * (a - r)).Sum());
        var norm = Math.Sqrt(converged.Sum(r => (double)r * r));
        Assert.True(difference <= 0.02 * norm, $"relative L2 {difference / norm}");

        // Completeness: the attributions add up to the score's change from the baseline.
        var change = c.Score - c.BaselineScore;
        if (model != "mini_mobilenet") // its score barely depends on the input (fixtures README)
            Assert.True(Math.Abs(actual.Sum(v => (double)v) - change) <= 0.02 * Math.Abs(change), $"sum {actual.Sum()} vs {change}");
    }

    [Theory]
    [InlineData("gradient")]
    [InlineData("guided-backprop")]
    [InlineData("grad-cam")] // a map per pixel ([H, W]), not per input value
    public async Task Smoothgrad_without_noise_equals_its_base(string baseMethod)
    {
        var tensor = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input1.tensor.npy"));
        using var plain = Http.TensorForm(tensor);
        var expected = Npy.Read(await Http.ReadBytesAsync(await Client.PostAsync($"/v1/models/mini_resnet/explain?method={baseMethod}&format=npy", plain)), long.MaxValue);
        using var smoothed = Http.TensorForm(tensor);
        var actual = Npy.Read(await Http.ReadBytesAsync(await Client.PostAsync(
            $"/v1/models/mini_resnet/explain?method=smoothgrad&base={baseMethod}&noise=0&samples=5&format=npy", smoothed)), long.MaxValue);
        var scale = expected.Data.Max(Math.Abs);
        Assert.True(expected.Data.Zip(actual.Data, (e, a) => Math.Abs(e - a)).Max() <= 1e-5 * scale);
    }

    [Fact]
    public async Task Smoothgrad_is_reproducible_for_a_seed_and_varies_without_one()
    {
        var tensor = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input2.tensor.npy"));
        async Task<float[]> Run(string query)
        {
            using var form = Http.TensorForm(tensor);
            return Npy.Read(await Http.ReadBytesAsync(await Client.PostAsync($"/v1/models/seed_cnn/explain?method=smoothgrad&samples=8&format=npy{query}", form)), long.MaxValue).Data;
        }
        Assert.Equal(await Run("&seed=7"), await Run("&seed=7"));
        Assert.NotEqual(await Run("&seed=7"), await Run("&seed=8"));

        using var json = Http.TensorForm(tensor);
        var response = await Http.ReadAsync<ExplainResponse>(await Client.PostAsync("/v1/models/seed_cnn/explain?method=smoothgrad&samples=4&format=json", json));
        Assert.True(response.Parameters.ContainsKey("seed")); // the seed it drew, to reproduce the map
        Assert.Equal("gradient", response.Parameters["base"].ToString());
    }

    [Fact]
    public async Task Grad_cam_of_another_layer_and_of_an_unknown_layer()
    {
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await Client.GetAsync("/v1/models/mini_resnet"));
        var other = descriptor.Explain.Layers.First(l => l.Name != descriptor.Explain.DefaultLayer).Name;
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")));
        var map = Npy.Read(await Http.ReadBytesAsync(await Client.PostAsync($"/v1/models/mini_resnet/explain?method=grad-cam&layer={Uri.EscapeDataString(other)}&format=npy", form)), long.MaxValue);
        Assert.Equal([32L, 32], map.Shape);
        Assert.All(map.Data, v => Assert.True(v >= 0));

        using var bad = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")));
        await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/mini_resnet/explain?method=grad-cam&layer=nope", bad), HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("guided-backprop", "")]
    [InlineData("grad-cam", "")]
    [InlineData("integrated-gradients", "&view=overlay&colormap=viridis&sign=diverging")]
    [InlineData("smoothgrad", "&view=gray&samples=3")]
    [InlineData("smoothgrad", "&base=grad-cam&samples=2")]
    [InlineData("input-x-gradient", "&view=heatmap&colormap=jet&sign=positive&clip=90")]
    [InlineData("guided-grad-cam", "&view=heatmap&sign=negative&colormap=inferno")]
    public async Task Every_method_draws_a_png_of_the_upload_size(string method, string query)
    {
        using var form = Http.Form(("image", TestImages.Jpeg(101, 37, new Rgb24(90, 160, 30)), "odd.jpg"));
        var response = await Client.PostAsync($"/v1/models/seed_cnn/explain?method={method}{query}", form);
        using var png = Image.Load<Rgb24>(await Http.ReadBytesAsync(response));
        Assert.Equal((101, 37), (png.Width, png.Height));
    }

    [Fact]
    public async Task Repeated_explanations_come_from_the_cache_unless_they_are_random()
    {
        var tensor = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input3.tensor.npy"));
        async Task<(string Cache, byte[] Body)> Run(string query)
        {
            using var form = Http.TensorForm(tensor);
            var response = await Client.PostAsync($"/v1/models/seed_cnn/explain?format=npy&{query}", form);
            return (response.Headers.GetValues("X-Explain-Cache").Single(), await Http.ReadBytesAsync(response));
        }
        var first = await Run("method=input-x-gradient&target=0");
        var second = await Run("method=input-x-gradient&target=0");
        Assert.Equal(("miss", "hit"), (first.Cache, second.Cache));
        Assert.Equal(first.Body, second.Body);
        Assert.Equal("miss", (await Run("method=input-x-gradient&target=1")).Cache);
        Assert.Equal("miss", (await Run("method=smoothgrad&samples=2")).Cache);
        Assert.Equal("miss", (await Run("method=smoothgrad&samples=2")).Cache); // no seed: random, never cached
        await Run("method=smoothgrad&samples=2&seed=3");
        Assert.Equal("hit", (await Run("method=smoothgrad&samples=2&seed=3")).Cache);
    }

    [Fact]
    public async Task Fixture_models_are_explainable_with_tight_parity()
    {
        foreach (var name in FixtureModelsService.Models)
        {
            var model = await Http.ReadAsync<ModelDescriptor>(await Client.GetAsync($"/v1/models/{name}"));
            Assert.True(model.Explain.Supported, model.Explain.Reason);
            Assert.Empty(model.Explain.UnsupportedOperators);
            Assert.InRange(model.Explain.ParityMaxAbsDiff!.Value, 0, 1e-4);
            Assert.NotEmpty(model.Explain.Layers);
            Assert.All(model.Explain.Layers, l => Assert.Equal(4, l.Shape.Count));
            Assert.Contains(model.Explain.Layers, l => l.Name == model.Explain.DefaultLayer);
        }
    }

    [Fact]
    public async Task A_target_by_label_or_index_is_explained_instead_of_the_top1()
    {
        // seed_cnn input0 is a square (class 0); explain "circle" (class 1) instead.
        using var byLabel = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")));
        var response = await Client.PostAsync("/v1/models/seed_cnn/explain?target=circle&format=json&method=gradient", byLabel);
        var json = await Http.ReadAsync<ExplainResponse>(response);
        Assert.Equal((1, "circle", "gradient"), (json.Target, json.Label, json.Method));
        Assert.Equal(ReferenceCases.Get("seed_cnn", "input0").Logits[1], json.Score, 3);
        Assert.Equal(0, json.Top[0].Index); // the model still predicts a square
        Assert.Equal((64, 64), (json.Width, json.Height));
        using var png = Image.Load<Rgb24>(Convert.FromBase64String(json.Png));
        Assert.Equal((64, 64), (png.Width, png.Height));

        using var byIndex = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")));
        var indexed = await Client.PostAsync("/v1/models/seed_cnn/explain?target=1&format=npy&method=gradient", byIndex);
        Assert.Equal("1", indexed.Headers.GetValues("X-Explain-Target").Single());
    }

    [Fact]
    public async Task Png_maps_have_the_size_of_the_upload()
    {
        using var form = Http.Form(("image", TestImages.Png(97, 31, new Rgb24(120, 30, 200)), "odd.png"));
        var response = await Client.PostAsync("/v1/models/mini_resnet/explain", form);
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        using var png = Image.Load<Rgb24>(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal((97, 31), (png.Width, png.Height));
    }

    [Theory]
    [InlineData("grad-cam", 3, 2)]
    [InlineData("grad-cam", 25, 2)]
    [InlineData("guided-grad-cam", 25, 3)]
    [InlineData("integrated-gradients", 3, 3)]
    public async Task SmoothGrad_wraps_any_method(string baseMethod, int samples, int rank)
    {
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")));
        var response = await Client.PostAsync($"/v1/models/mini_resnet/explain?method=smoothgrad&base={baseMethod}&samples={samples}&steps=8&format=npy", form);
        var map = Npy.Read(await Http.ReadBytesAsync(response), long.MaxValue);
        Assert.Equal(rank, map.Shape.Length);
        Assert.Contains(map.Data, v => v != 0);
    }

    [Theory]
    [InlineData("method=nonsense")]
    [InlineData("method=integrated-gradients&steps=0")]
    [InlineData("method=integrated-gradients&steps=100000")]
    [InlineData("method=smoothgrad&samples=0")]
    [InlineData("method=smoothgrad&samples=100000")]
    [InlineData("method=smoothgrad&noise=-1")]
    [InlineData("method=smoothgrad&base=smoothgrad")]
    [InlineData("method=smoothgrad&base=integrated-gradients&steps=0")]
    [InlineData("view=sideways")]
    [InlineData("colormap=rainbow")]
    [InlineData("sign=both")]
    [InlineData("clip=0")]
    [InlineData("alpha=2")]
    [InlineData("steps=many")]
    [InlineData("format=gif")]
    [InlineData("target=10")]
    [InlineData("target=-1")]
    [InlineData("target=no-such-label")]
    public async Task Bad_parameters_are_400(string query)
    {
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")));
        await Http.AssertProblemAsync(await Client.PostAsync($"/v1/models/mini_resnet/explain?{query}", form), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task A_batch_is_refused_and_an_unknown_model_is_404()
    {
        using var batch = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png"), TestPaths.Fixture("seed_cnn", "input1.png"));
        await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/explain", batch), HttpStatusCode.BadRequest);
        using var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png"));
        await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/nope/explain", form), HttpStatusCode.NotFound);
    }
}
