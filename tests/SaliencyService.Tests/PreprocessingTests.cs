using SaliencyService.Api.Errors;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace SaliencyService.Tests;

public sealed class PreprocessingTests
{
    private static readonly TensorDescriptor Nchw = new("x", [-1, 3, 32, 32], "float32");
    private static readonly TensorDescriptor Nhwc = new("x", [-1, 64, 64, 3], "float32");

    public static IEnumerable<object[]> Cases => ReferenceCases.AsTheoryData();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Image_preprocessing_reproduces_the_reference_tensor(string model, string stem)
    {
        var manifest = System.Text.Json.JsonSerializer.Deserialize<ModelManifest>(
            File.ReadAllText(TestPaths.Fixture(model, "model.json")), Http.Json)!;
        var reference = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")), long.MaxValue);
        var p = PreprocessingResolver.Resolve(manifest, [new TensorDescriptor(manifest.Input!, reference.Shape, "float32")], []);

        using var image = new ImageLoader(1_000_000).Load(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".png")), "image");
        var actual = new float[ImageTensorizer.SampleLength(p)];
        ImageTensorizer.Write(image, p, actual);

        Assert.Equal(reference.Data.Length, actual.Length);
        for (var i = 0; i < actual.Length; i++) Assert.True(Math.Abs(reference.Data[i] - actual[i]) < 1e-5f, $"element {i}: {actual[i]} vs {reference.Data[i]}");
    }

    [Fact]
    public void Defaults_follow_the_contract()
    {
        var nchw = PreprocessingResolver.Resolve(new ModelManifest(), [Nchw], []);
        Assert.Equal(("x", "NCHW", 32, 32, "RGB", 1 / 255.0), (nchw.Input, nchw.Layout, nchw.Height, nchw.Width, nchw.Channels, nchw.Scale));
        Assert.Equal([0.0, 0, 0], nchw.Mean);
        Assert.Equal([1.0, 1, 1], nchw.Std);

        Assert.Equal("NHWC", PreprocessingResolver.Resolve(new ModelManifest(), [Nhwc], []).Layout);
        var dynamic = PreprocessingResolver.Resolve(new ModelManifest(), [new TensorDescriptor("x", [-1, 3, -1, -1], "float32")], []);
        Assert.Equal((224, 224), (dynamic.Height, dynamic.Width));
        var gray = PreprocessingResolver.Resolve(new ModelManifest(), [new TensorDescriptor("x", [-1, 1, 28, 28], "float32")], []);
        Assert.Equal(("NCHW", "GRAY"), (gray.Layout, gray.Channels));
        var second = PreprocessingResolver.Resolve(new ModelManifest { Input = "y", Mean = [0.5] }, [Nchw, Nhwc with { Name = "y" }], []);
        Assert.Equal(("y", "NHWC"), (second.Input, second.Layout));
        Assert.Equal([0.5, 0.5, 0.5], second.Mean);
    }

    [Fact]
    public void Layout_channel_order_and_normalisation_land_where_the_model_expects()
    {
        using var image = new Image<Rgb24>(2, 1);
        image[0, 0] = new Rgb24(10, 20, 30);
        image[1, 0] = new Rgb24(40, 50, 60);

        var bgrNchw = new Preprocessing("x", "NCHW", 1, 2, "BGR", 1, [1, 2, 3], [1, 2, 4]);
        var a = new float[6];
        ImageTensorizer.Write(image, bgrNchw, a);
        // Planes B, G, R; (pixel − mean[c]) / std[c] in the model's channel order.
        Assert.Equal([29f, 59f, (20 - 2) / 2f, (50 - 2) / 2f, (10 - 3) / 4f, (40 - 3) / 4f], a);

        var rgbNhwc = new Preprocessing("x", "NHWC", 1, 2, "RGB", 0.1, [0, 0, 0], [1, 1, 1]);
        var b = new float[6];
        ImageTensorizer.Write(image, rgbNhwc, b);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], b.Select(v => MathF.Round(v, 5)));

        var gray = new Preprocessing("x", "NCHW", 1, 2, "GRAY", 1, [0], [1]);
        var c = new float[2];
        ImageTensorizer.Write(image, gray, c);
        Assert.Equal(0.299f * 10 + 0.587f * 20 + 0.114f * 30, c[0], 3);
    }

    [Fact]
    public void Images_are_resized_to_the_model_size()
    {
        using var image = new Image<Rgb24>(97, 31, new Rgb24(100, 150, 200));
        var p = new Preprocessing("x", "NCHW", 8, 8, "RGB", 1, [0, 0, 0], [1, 1, 1]);
        var data = new float[3 * 64];
        ImageTensorizer.Write(image, p, data);
        Assert.All(data[..64], v => Assert.Equal(100f, v, 2)); // a flat image stays flat
        Assert.All(data[128..], v => Assert.Equal(200f, v, 2));
    }

    [Fact]
    public void Exif_orientation_is_applied()
    {
        using var portrait = new Image<Rgb24>(4, 2);
        portrait.Metadata.ExifProfile = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile();
        portrait.Metadata.ExifProfile.SetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation, (ushort)6); // rotate 90° CW
        using var stream = new MemoryStream();
        portrait.SaveAsJpeg(stream);
        using var loaded = new ImageLoader(1000).Load(stream.ToArray(), "image");
        Assert.Equal((2, 4), (loaded.Width, loaded.Height));
    }

    [Fact]
    public void An_inconsistent_manifest_is_refused()
    {
        Assert.Throws<InvalidArgumentException>(() => PreprocessingResolver.Resolve(new ModelManifest { Channels = "CMYK" }, [Nchw], []));
        Assert.Throws<InvalidArgumentException>(() => PreprocessingResolver.Resolve(new ModelManifest { Width = 31 }, [Nchw], []));
        Assert.Throws<InvalidArgumentException>(() => PreprocessingResolver.Resolve(new ModelManifest { Std = [1, 0, 1] }, [Nchw], []));
        Assert.Throws<UnsupportedModelException>(() => PreprocessingResolver.Resolve(new ModelManifest(), [], []));
    }
}
