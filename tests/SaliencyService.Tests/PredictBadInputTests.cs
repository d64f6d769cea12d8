using System.Net;
using System.Text;
using SaliencyService.Contracts;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Bad and unusual inputs to predict: each a clean 4xx problem, or a correct answer.</summary>
public sealed class PredictBadInputTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    [Fact]
    public async Task Unknown_model_is_a_404()
    {
        using var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png"));
        await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/no-such-model/predict", form), HttpStatusCode.NotFound);
    }

    public static IEnumerable<object[]> UndecodableImages =>
    [
        ["truncated png", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.png"))[..200], HttpStatusCode.BadRequest],
        ["corrupt png body", Corrupt(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.png"))), HttpStatusCode.BadRequest],
        ["truncated jpeg", TestImages.Jpeg(64, 64, new Rgb24(1, 2, 3))[..100], HttpStatusCode.BadRequest],
        ["text", Encoding.UTF8.GetBytes("this is not an image"), HttpStatusCode.UnsupportedMediaType],
        ["gif", TestImages.Gif(8, 8), HttpStatusCode.UnsupportedMediaType],
        ["zero bytes", Array.Empty<byte>(), HttpStatusCode.BadRequest],
        ["decompression bomb", TestImages.PngBomb(50_000, 50_000), HttpStatusCode.RequestEntityTooLarge],
    ];

    [Theory]
    [MemberData(nameof(UndecodableImages))]
    public async Task An_image_that_cannot_be_used_is_a_clean_4xx(string what, byte[] bytes, HttpStatusCode status)
    {
        using var form = Http.Form(("image", bytes, "upload.png"));
        var detail = await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", form), status);
        Assert.False(string.IsNullOrEmpty(detail), what);
    }

    [Fact]
    public async Task An_image_over_the_pixel_limit_is_a_413_before_decoding()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:MaxImagePixels"] = "4096" });
        using var client = factory.CreateClient();
        await Http.ImportFixtureAsync(client, "seed_cnn");
        using var ok = Http.Form(("image", TestImages.Png(64, 64, new Rgb24(0, 0, 0)), "ok.png"));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/models/seed_cnn/predict", ok)).StatusCode);
        using var big = Http.Form(("image", TestImages.Png(65, 64, new Rgb24(0, 0, 0)), "big.png"));
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models/seed_cnn/predict", big), HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("4096", detail);
    }

    public static IEnumerable<object[]> UsableImages =>
    [
        ["grayscale png", TestImages.Png(64, 64, new L8(128))],
        ["rgba png", TestImages.Png(64, 64, new Rgba32(10, 200, 30, 40))],
        ["16-bit png", TestImages.Png(64, 64, new Rgb48(1000, 30000, 65535), PngBitDepth.Bit16)],
        ["jpeg", TestImages.Jpeg(64, 64, new Rgb24(200, 10, 10))],
        ["odd non-square size", TestImages.Png(97, 31, new Rgb24(50, 60, 70))],
        ["one pixel", TestImages.Png(1, 1, new Rgb24(255, 255, 255))],
    ];

    [Theory]
    [MemberData(nameof(UsableImages))]
    public async Task Unusual_but_valid_images_are_predicted(string what, byte[] bytes)
    {
        using var form = Http.Form(("image", bytes, "upload"));
        var result = await Http.ReadAsync<PredictResponse>(await Client.PostAsync("/v1/models/mini_resnet/predict?topK=10", form));
        var top = Assert.Single(result.Predictions).Top;
        Assert.Equal(10, top.Count);
        Assert.All(top, s => Assert.True(float.IsFinite(s.Score), what));
    }

    [Fact]
    public async Task A_CMYK_JPEG_is_decoded_to_its_true_colours_and_predicted()
    {
        var cmyk = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Images", "rocket-cmyk.jpg"));
        using var decoded = new ImageLoader(1_000_000).Load(cmyk, "image");
        using var rgb = Image.Load<Rgb24>(Path.Combine(AppContext.BaseDirectory, "Images", "rocket-rgb.png"));
        Assert.Equal((rgb.Width, rgb.Height), (decoded.Width, decoded.Height));
        double difference = 0;
        for (var y = 0; y < rgb.Height; y++)
        for (var x = 0; x < rgb.Width; x++)
        {
            var (a, b) = (decoded[x, y], rgb[x, y]);
            difference += Math.Abs(a.R - b.R) + Math.Abs(a.G - b.G) + Math.Abs(a.B - b.B);
        }
        // JPEG loss is a few levels; inverted or unconverted CMYK would be off by about a hundred.
        Assert.InRange(difference / (3.0 * rgb.Width * rgb.Height), 0, 8);

        using var form = Http.Form(("image", cmyk, "cmyk.jpg"));
        var result = await Http.ReadAsync<PredictResponse>(await Client.PostAsync("/v1/models/mini_resnet/predict", form));
        Assert.All(Assert.Single(result.Predictions).Top, s => Assert.True(float.IsFinite(s.Score)));
    }

    public static IEnumerable<object[]> BadTensors =>
    [
        ["wrong spatial size", Npy.Write(new float[3 * 16 * 16], [3, 16, 16])],
        ["wrong rank", Npy.Write(new float[3 * 32], [3, 32])],
        ["wrong channel count", Npy.Write(new float[1 * 4 * 32 * 32], [1, 4, 32, 32])],
        ["NHWC for an NCHW model", Npy.Write(new float[32 * 32 * 3], [32, 32, 3])],
        ["float64", Npy.Write(new float[3 * 32 * 32 * 2], [3, 32, 32]) is var f ? Replace(f, "<f4", "<f8") : []],
        ["not npy", Encoding.UTF8.GetBytes("1,2,3")],
        ["short data", Npy.Write(new float[3 * 32 * 32], [3, 32, 32])[..200]],
        ["empty batch", Npy.Write([], [0, 3, 32, 32])],
    ];

    [Theory]
    [MemberData(nameof(BadTensors))]
    public async Task A_tensor_that_does_not_fit_the_model_is_a_400(string what, byte[] npy)
    {
        using var form = Http.TensorForm(npy);
        var detail = await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/mini_resnet/predict", form), HttpStatusCode.BadRequest);
        Assert.False(string.IsNullOrEmpty(detail), what);
    }

    [Fact]
    public async Task A_huge_declared_tensor_is_refused_without_allocating_it()
    {
        var npy = Replace(Npy.Write(new float[4], [1, 3, 32, 32]), "(1, 3, 32, 32)", "(100000, 100000, 100000)");
        using var form = Http.TensorForm(npy);
        await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/mini_resnet/predict", form), HttpStatusCode.RequestEntityTooLarge);
    }

    [Fact]
    public async Task Missing_or_mixed_parts_and_non_multipart_bodies_are_4xx()
    {
        using (var none = new MultipartFormDataContent { { new StringContent("x"), "other" } })
            await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", none), HttpStatusCode.BadRequest);

        using (var both = Http.Form(("image", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.png")), "a.png"),
                   ("tensor", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), "a.npy")))
            await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", both), HttpStatusCode.BadRequest);
        using (var tensorFirst = Http.Form(("tensor", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), "a.npy"),
                   ("image", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.png")), "a.png")))
            Assert.Contains("not both", (await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", tensorFirst), HttpStatusCode.BadRequest)));
        using (var twoTensors = Http.Form(("tensor", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), "a.npy"),
                   ("tensor", File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), "b.npy")))
            Assert.Contains("one 'tensor' part", (await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", twoTensors), HttpStatusCode.BadRequest)));

        using (var json = new StringContent("{}", Encoding.UTF8, "application/json"))
            await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", json), HttpStatusCode.UnsupportedMediaType);

        using (var broken = new StringContent("--x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc", Encoding.UTF8))
        {
            broken.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=x");
            await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", broken), HttpStatusCode.BadRequest);
        }
    }

    [Fact]
    public async Task Unknown_routes_and_methods_answer_with_problems()
    {
        await Http.AssertProblemAsync(await Client.GetAsync("/v1/nothing-here"), HttpStatusCode.NotFound);
        await Http.AssertProblemAsync(await Client.PutAsync("/v1/models", new StringContent("")), HttpStatusCode.MethodNotAllowed);
    }

    private static byte[] Corrupt(byte[] png)
    {
        var copy = png.ToArray();
        for (var i = 60; i < copy.Length - 20; i += 7) copy[i] ^= 0x5A; // scramble the compressed pixel data
        return copy;
    }

    private static byte[] Replace(byte[] npy, string from, string to)
    {
        var text = Encoding.Latin1.GetString(npy);
        return Encoding.Latin1.GetBytes(text.Replace(from, to.PadRight(from.Length)));
    }
}
