using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Pictures follow the model's layout and channel order: never transposed, never colour-swapped.</summary>
public sealed class RendererTests
{
    private const int Width = 4, Height = 2;

    /// <summary>A map that is strongly red on the left column only, written in the model's layout and order.</summary>
    private static float[] RedOnTheLeft(Preprocessing p)
    {
        var map = new float[Width * Height * 3];
        var red = p.Channels == "BGR" ? 2 : 0;
        for (var y = 0; y < Height; y++)
            map[p.Layout == "NCHW" ? red * Width * Height + y * Width : (y * Width) * 3 + red] = 1;
        return map;
    }

    [Theory]
    [InlineData("NCHW", "RGB")]
    [InlineData("NCHW", "BGR")]
    [InlineData("NHWC", "RGB")]
    [InlineData("NHWC", "BGR")]
    public void The_rgb_view_keeps_position_and_colour(string layout, string channels)
    {
        var p = new Preprocessing("x", layout, Height, Width, channels, 1, [0, 0, 0], [1, 1, 1]);
        var map = new AttributionMap(AttributionMethods.Default, RedOnTheLeft(p), [], 0, 0, [], new Dictionary<string, object>());
        using var background = new Image<Rgb24>(Width * 10, Height * 10);
        using var png = Image.Load<Rgb24>(SaliencyRenderer.Png(map, p, AttributionMethods.Default.RenderDefaults, background.Width, background.Height, () => InputPicture.Pixels(background)));

        Assert.Equal((Width * 10, Height * 10), (png.Width, png.Height));
        var left = png[2, 10];
        var right = png[png.Width - 3, 10];
        Assert.True(left.R > left.G + 50 && left.R > left.B + 50, $"left pixel {left}");
        Assert.True(Math.Abs(right.R - right.G) < 5 && Math.Abs(right.G - right.B) < 5, $"right pixel {right}");
    }

    [Fact]
    public void A_cam_overlay_blends_over_the_uploaded_image()
    {
        var p = new Preprocessing("x", "NCHW", Height, Width, "RGB", 1, [0, 0, 0], [1, 1, 1]);
        var cam = new float[Width * Height];
        cam[Width - 1] = cam[2 * Width - 1] = 1; // hot on the right column
        var map = new AttributionMap(AttributionMethods.Get("grad-cam"), cam, [Height, Width], 0, 0, [], new Dictionary<string, object>());
        using var background = new Image<Rgb24>(40, 20, new Rgb24(0, 0, 0));
        using var png = Image.Load<Rgb24>(SaliencyRenderer.Png(map, p, AttributionMethods.Get("grad-cam").RenderDefaults, background.Width, background.Height, () => InputPicture.Pixels(background)));
        var hot = png[39, 10];
        var cold = png[0, 10];
        Assert.True(hot.R > 50 && hot.G < 20 && hot.B < 20, $"hot {hot}"); // jet's dark red, half-blended over black
        Assert.True(cold.B > 50 && cold.R < 20, $"cold {cold}"); // jet's blue
    }

    /// <summary>A tensor made from pixels by the model's preprocessing pictures those very pixels, whatever its layout and channel order.</summary>
    [Theory]
    [InlineData("NCHW", "RGB")]
    [InlineData("NCHW", "BGR")]
    [InlineData("NHWC", "RGB")]
    [InlineData("NHWC", "BGR")]
    public void A_tensor_input_pictures_the_pixels_it_was_made_from(string layout, string channels)
    {
        var (height, width) = (5, 7);
        var p = new Preprocessing("x", layout, height, width, channels, 1 / 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        var pixels = new byte[height * width * 3];
        new Random(3).NextBytes(pixels);
        var tensor = new float[pixels.Length];
        for (var i = 0; i < height * width; i++)
        for (var colour = 0; colour < 3; colour++)
        {
            var c = channels == "BGR" ? 2 - colour : colour; // the model's channel
            tensor[layout == "NCHW" ? c * height * width + i : i * 3 + c] = (float)((pixels[i * 3 + colour] * p.Scale - p.Mean[c]) / p.Std[c]);
        }
        Assert.Equal(pixels, InputPicture.Pixels(tensor, p));
    }

    /// <summary>Each byte is the nearest level to round(clamp(v · scale + offset, 0, 255)) worked in double; NaN is 0.</summary>
    [Fact]
    public void Affine_bytes_are_the_nearest_levels()
    {
        var random = new Random(5);
        var values = Enumerable.Range(0, 1001).Select(_ => (float)(random.NextDouble() * 4 - 2)).Append(float.NaN).ToArray();
        var (scale, offset) = (97.3f, 121.1f);
        var bytes = new byte[values.Length * 3];
        PixelBytes.Affine(values, 1, scale, offset, bytes.AsSpan(1), 3, values.Length);
        for (var i = 0; i < values.Length - 1; i++)
            Assert.InRange(bytes[3 * i + 1], Math.Clamp((double)values[i] * scale + offset, 0, 255) - 0.5001, Math.Clamp((double)values[i] * scale + offset, 0, 255) + 0.5001);
        Assert.Equal(0, bytes[^2]);
        Assert.All(Enumerable.Range(0, values.Length), i => Assert.Equal(0, bytes[3 * i] | bytes[3 * i + 2])); // the other colours untouched
    }

    /// <summary>The vector sums against a plain two-pass loop in double, on lengths with and without a tail.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(37)]
    [InlineData(150528)]
    public void Mean_and_deviation_are_those_of_a_plain_double_loop(int count)
    {
        var random = new Random(count);
        var values = Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 1e-3 + 5e-4)).ToArray();
        var mean = values.Sum(v => (double)v) / count;
        var deviation = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / count);
        var (m, d) = PixelBytes.MeanAndDeviation(values);
        Assert.Equal(mean, m, mean * 1e-12);
        Assert.Equal(deviation, d, Math.Max(deviation * 1e-9, 1e-18));
    }

    /// <summary>The vector blend gives the bytes the plain float formula gives, ties (alpha 0.5) to even, on lengths with a tail.</summary>
    [Theory]
    [InlineData(0.5f, 1001)]
    [InlineData(0.3f, 77)]
    [InlineData(1f, 64)]
    [InlineData(0f, 5)]
    public void An_overlay_blends_as_the_plain_formula_does(float alpha, int length)
    {
        var random = new Random(length);
        var (heat, picture) = (new byte[length], new byte[length]);
        random.NextBytes(heat);
        random.NextBytes(picture);
        var expected = heat.Select((h, i) => (byte)Math.Round(alpha * h + (1 - alpha) * picture[i], MidpointRounding.ToEven)).ToArray();
        PixelBytes.Blend(heat, picture, alpha);
        Assert.Equal(expected, heat);
    }

    /// <summary>A map's picture upscaled to a photo's size is ImageSharp's triangle (bilinear) resize, within a level.</summary>
    [Theory]
    [InlineData(7, 5, 7, 5)]
    [InlineData(7, 5, 20, 9)]
    [InlineData(224, 224, 512, 512)]
    [InlineData(224, 224, 640, 427)]
    [InlineData(3, 2, 301, 199)]
    public void Upscaling_is_imagesharps_bilinear_within_a_level(int fromWidth, int fromHeight, int width, int height)
    {
        var pixels = new byte[fromWidth * fromHeight * 3];
        new Random(width).NextBytes(pixels);
        using var image = Image.LoadPixelData<Rgb24>(pixels, fromWidth, fromHeight);
        image.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(width, height), Mode = ResizeMode.Stretch, Sampler = KnownResamplers.Triangle }));
        var expected = InputPicture.Pixels(image);

        var upscaled = Upscaling.Bilinear(pixels, fromWidth, fromHeight, width, height);
        Assert.Equal(expected.Length, upscaled.Length);
        Assert.InRange(expected.Zip(upscaled, (a, b) => Math.Abs(a - b)).Max(), 0, 1);
    }
}
