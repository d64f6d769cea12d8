using System.Net;
using SaliencyService.Tests.Support;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Hundreds of seeded, reproducible mutations of valid PNG, JPEG, .npy and ONNX files: every
/// answer is 2xx or 4xx, and the service is alive afterwards.
/// </summary>
public sealed class FuzzTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    /// <summary>Flips, truncations, insertions and overwrites, chosen by the seed.</summary>
    private static byte[] Mutate(byte[] original, Random random)
    {
        var bytes = original.ToList();
        var edits = random.Next(1, 6);
        for (var e = 0; e < edits && bytes.Count > 0; e++)
        {
            var at = random.Next(bytes.Count);
            switch (random.Next(5))
            {
                case 0: bytes[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: bytes.RemoveRange(at, bytes.Count - at); break;
                case 2: bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 16)).Select(_ => (byte)random.Next(256))); break;
                case 3: bytes[at] = (byte)random.Next(256); break;
                default: bytes.RemoveRange(at, Math.Min(random.Next(1, 64), bytes.Count - at)); break;
            }
        }
        return bytes.ToArray();
    }

    private async Task AssertNot5xxAsync(Func<Task<HttpResponseMessage>> send, string what)
    {
        var response = await send();
        Assert.True((int)response.StatusCode < 500, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task Mutated_images_never_cause_a_server_error()
    {
        var random = new Random(20261127);
        var png = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input1.png"));
        var jpeg = TestImages.Jpeg(64, 64, new Rgb24(10, 200, 100));
        for (var i = 0; i < 300; i++)
        {
            var bytes = Mutate(i % 2 == 0 ? png : jpeg, random);
            var endpoint = i % 10 == 0 ? "explain?method=gradient&format=npy" : "predict";
            await AssertNot5xxAsync(() => Client.PostAsync($"/v1/models/seed_cnn/{endpoint}", Http.Form(("image", bytes, "fuzz"))), $"image case {i}");
        }
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Mutated_tensors_never_cause_a_server_error()
    {
        var random = new Random(7);
        var npy = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy"));
        for (var i = 0; i < 200; i++)
        {
            var bytes = Mutate(npy, random);
            await AssertNot5xxAsync(() => Client.PostAsync("/v1/models/mini_resnet/predict", Http.TensorForm(bytes)), $"tensor case {i}");
        }
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Mutated_models_never_cause_a_server_error_and_leave_no_staging()
    {
        var random = new Random(11);
        var onnx = File.ReadAllBytes(TestPaths.Fixture("mini_mobilenet", "model.onnx"));
        for (var i = 0; i < 80; i++)
        {
            var bytes = Mutate(onnx, random);
            await AssertNot5xxAsync(() => Client.PostAsync("/v1/models?replace=true", Http.ModelForm(bytes, $"fuzz-{i % 4}")), $"model case {i}");
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(service.Factory.Store, ".staging")));
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health/live")).StatusCode);
    }
}
