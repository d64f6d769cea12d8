using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace SaliencyService.Explain.Rendering;

/// <summary>
/// Draws an attribution as a PNG the size of the uploaded image. Guided backprop and deconvnet
/// are drawn as the classic picture (the standardised gradient around mid-grey, in colour);
/// plain gradients as a jet heatmap of their per-pixel magnitude, clipped at the 99.5th percentile.
/// </summary>
public static class SaliencyRenderer
{
    private const double ClipPercentile = 99.5;

    public static byte[] Png(AttributionMap attribution, Preprocessing p, int width, int height)
    {
        using var image = attribution.Method is AttributionMethod.GuidedBackprop or AttributionMethod.Deconvnet
            ? RgbPicture(attribution.Map, p)
            : Heatmap(attribution.Map, p);
        if (image.Width != width || image.Height != height)
            image.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(width, height), Mode = ResizeMode.Stretch, Sampler = KnownResamplers.Triangle }));
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    /// <summary>(v − mean) / std · 0.1 + 0.5 per image, clipped to [0, 1], channels shown as RGB.</summary>
    private static Image<Rgb24> RgbPicture(float[] map, Preprocessing p)
    {
        var mean = map.Average();
        var std = Math.Sqrt(map.Select(v => (v - mean) * (v - mean)).Average());
        byte Scale(float v) => (byte)Math.Round(255 * Math.Clamp((v - mean) / (std + 1e-5) * 0.1 + 0.5, 0, 1));

        var image = new Image<Rgb24>(p.Width, p.Height);
        for (var y = 0; y < p.Height; y++)
        for (var x = 0; x < p.Width; x++)
        {
            var (r, g, b) = Pixel(map, p, x, y);
            image[x, y] = new Rgb24(Scale(r), Scale(g), Scale(b));
        }
        return image;
    }

    private static Image<Rgb24> Heatmap(float[] map, Preprocessing p)
    {
        var magnitude = new float[p.Width * p.Height];
        for (var y = 0; y < p.Height; y++)
        for (var x = 0; x < p.Width; x++)
        {
            var (r, g, b) = Pixel(map, p, x, y);
            magnitude[y * p.Width + x] = Math.Max(Math.Abs(r), Math.Max(Math.Abs(g), Math.Abs(b)));
        }
        var sorted = magnitude.Order().ToArray();
        var clip = sorted[(int)Math.Min(sorted.Length - 1, Math.Round(ClipPercentile / 100 * (sorted.Length - 1)))];
        var image = new Image<Rgb24>(p.Width, p.Height);
        for (var i = 0; i < magnitude.Length; i++)
        {
            var (r, g, b) = Colormaps.Jet(clip > 0 ? magnitude[i] / clip : 0);
            image[i % p.Width, i / p.Width] = new Rgb24(r, g, b);
        }
        return image;
    }

    /// <summary>The map at pixel (x, y) as (R, G, B), honouring layout and channel order.</summary>
    private static (float R, float G, float B) Pixel(float[] map, Preprocessing p, int x, int y)
    {
        var channels = p.Channels == "GRAY" ? 1 : 3;
        var plane = p.Width * p.Height;
        var at = y * p.Width + x;
        float Channel(int c) => p.Layout == "NCHW" ? map[c * plane + at] : map[at * channels + c];
        return p.Channels switch
        {
            "RGB" => (Channel(0), Channel(1), Channel(2)),
            "BGR" => (Channel(2), Channel(1), Channel(0)),
            _ => (Channel(0), Channel(0), Channel(0)),
        };
    }
}
