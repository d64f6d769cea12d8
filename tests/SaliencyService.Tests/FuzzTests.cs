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

    /// <summary>
    /// Sends <paramref name="cases"/> requests built by <paramref name="send"/> from the case number
    /// and the seeded random source; every answer must be below 500.
    /// </summary>
    private static async Task FuzzAsync(int seed, int cases, string what, Func<int, Random, Task<HttpResponseMessage>> send)
    {
        var random = new Random(seed);
        for (var i = 0; i < cases; i++)
        {
            var response = await send(i, random);
            Assert.True((int)response.StatusCode < 500, $"{what} case {i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    [Fact]
    public async Task Mutated_images_never_cause_a_server_error()
    {
        var png = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input1.png"));
        var jpeg = TestImages.Jpeg(64, 64, new Rgb24(10, 200, 100));
        await FuzzAsync(20261127, 300, "image", (i, random) =>
        {
            var bytes = Mutate(i % 2 == 0 ? png : jpeg, random);
            var endpoint = i % 10 == 0 ? "explain?method=gradient&format=npy" : "predict";
            return Client.PostAsync($"/v1/models/seed_cnn/{endpoint}", Http.Form(("image", bytes, "fuzz")));
        });
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Mutated_tensors_never_cause_a_server_error()
    {
        var npy = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy"));
        await FuzzAsync(7, 200, "tensor", (_, random) => Client.PostAsync("/v1/models/mini_resnet/predict", Http.TensorForm(Mutate(npy, random))));
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Mutated_models_never_cause_a_server_error_and_leave_no_staging()
    {
        var onnx = File.ReadAllBytes(TestPaths.Fixture("mini_mobilenet", "model.onnx"));
        await FuzzAsync(11, 80, "model", (i, random) => Client.PostAsync("/v1/models?replace=true", Http.ModelForm(Mutate(onnx, random), $"fuzz-{i % 4}")));
        Assert.Empty(StagedUploads.In(service.Factory.Store));
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task A_service_process_fed_mutations_and_bombs_stays_up_with_bounded_memory()
    {
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var process = await ServiceProcess.StartAsync(store);
            var client = process.Client;
            await Http.ImportFixtureAsync(client, "seed_cnn");
            var png = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.png"));
            var jpeg = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Images", "rocket-cmyk.jpg"));
            await FuzzAsync(5, 150, "upload", (i, random) =>
            {
                // Every fifth upload declares 3.6 gigapixels (about 10 GiB decoded) in a few bytes.
                var bytes = i % 5 == 0 ? TestImages.PngBomb(60_000, 60_000) : Mutate(i % 2 == 0 ? png : jpeg, random);
                var endpoint = i % 10 == 1 ? "explain?format=npy" : "predict";
                return client.PostAsync($"/v1/models/seed_cnn/{endpoint}", Http.Form(("image", bytes, "fuzz")));
            });
            Assert.False(process.HasExited);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);
            // The service with libtorch and ONNX Runtime loaded peaks near 400 MiB; a decoded bomb would be gigabytes.
            Assert.InRange(process.PeakResidentBytes, 0, 1024L * 1024 * 1024);
        }
        finally
        {
            ServiceFactory.DeleteServiceFolder(store);
        }
    }
}
