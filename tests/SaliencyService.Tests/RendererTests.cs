using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
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
}
