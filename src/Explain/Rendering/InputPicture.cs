using SaliencyService.Contracts;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Explain.Rendering;

/// <summary>An input's picture as 8-bit RGB pixels, rows top to bottom, for overlays.</summary>
public static class InputPicture
{
    /// <summary>An uploaded image's pixels.</summary>
    public static byte[] Pixels(Image<Rgb24> image)
    {
        var pixels = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(pixels);
        return pixels;
    }

    /// <summary>The picture a tensor input stands for: preprocessing inverted, pixel = (v·std[c] + mean[c]) / scale.</summary>
    public static byte[] Pixels(float[] sample, Preprocessing p)
    {
        var layout = MapLayout.Of(p);
        var count = p.Width * p.Height;
        var pixels = new byte[count * 3];
        int[] colours = [layout.Red, layout.Green, layout.Blue];
        for (var colour = 0; colour < 3; colour++)
        {
            var c = colours[colour];
            PixelBytes.Affine(layout.Plane(sample, c), layout.PixelStep, (float)(p.Std[c] / p.Scale), (float)(p.Mean[c] / p.Scale), pixels.AsSpan(colour), 3, count);
        }
        return pixels;
    }
}

/// <summary>
/// Where a sample's values are in the model's layout: channel c of pixel i (row-major) at
/// c·<see cref="ChannelStep"/> + i·<see cref="PixelStep"/>; <see cref="Red"/>, <see cref="Green"/>
/// and <see cref="Blue"/> are the model's channels for each colour (gray: 0 for all).
/// </summary>
public readonly record struct MapLayout(int ChannelStep, int PixelStep, int Red, int Green, int Blue)
{
    public static MapLayout Of(Preprocessing p)
    {
        var nchw = p.Layout == "NCHW";
        var (red, green, blue) = p.Channels switch { "RGB" => (0, 1, 2), "BGR" => (2, 1, 0), _ => (0, 0, 0) };
        return new(nchw ? p.Width * p.Height : 1, nchw ? 1 : Channels(p), red, green, blue);
    }

    public static int Channels(Preprocessing p) => p.Channels == "GRAY" ? 1 : 3;

    public float At(float[] sample, int pixel, int channel) => sample[channel * ChannelStep + pixel * PixelStep];

    /// <summary>Channel <paramref name="channel"/> of the sample from its first pixel on, a pixel every <see cref="PixelStep"/> values.</summary>
    public ReadOnlySpan<float> Plane(float[] sample, int channel) => sample.AsSpan(channel * ChannelStep);
}
