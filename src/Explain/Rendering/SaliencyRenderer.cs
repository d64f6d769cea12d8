using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace SaliencyService.Explain.Rendering;

/// <summary>Draws an attribution map as a PNG the size of the uploaded image (see <see cref="RenderOptions"/>).</summary>
public static class SaliencyRenderer
{
    /// <param name="background">The input picture at its uploaded size, for overlays.</param>
    public static byte[] Png(AttributionMap attribution, Preprocessing p, RenderOptions options, Image<Rgb24> background)
    {
        using var picture = Draw(attribution, p, options);
        Resize(picture, background.Width, background.Height);
        if (options.View == "overlay")
        {
            var alpha = (float)options.Alpha;
            for (var y = 0; y < picture.Height; y++)
            for (var x = 0; x < picture.Width; x++)
            {
                var (h, b) = (picture[x, y], background[x, y]);
                byte Mix(byte heat, byte image) => (byte)Math.Round(alpha * heat + (1 - alpha) * image);
                picture[x, y] = new Rgb24(Mix(h.R, b.R), Mix(h.G, b.G), Mix(h.B, b.B));
            }
        }
        using var stream = new MemoryStream();
        picture.SaveAsPng(stream);
        return stream.ToArray();
    }

    private static Image<Rgb24> Draw(AttributionMap attribution, Preprocessing p, RenderOptions options)
    {
        // One value per pixel ([H, W]): Grad-CAM's, or SmoothGrad's over it.
        var cam = attribution.MapShape.Length == 2;
        var colour = !cam && MapLayout.Channels(p) == 3;
        if (options.View == "rgb" && colour) return Standardised(attribution.Map, p);

        // One value per pixel: channels summed (as Captum does), then the sign rule.
        var values = new double[p.Width * p.Height];
        for (var y = 0; y < p.Height; y++)
        for (var x = 0; x < p.Width; x++)
        {
            var (r, g, b) = cam ? (attribution.Map[y * p.Width + x], 0f, 0f) : MapLayout.Rgb(attribution.Map, p, x, y);
            var sum = cam || !colour ? r : r + g + b;
            values[y * p.Width + x] = options.Sign switch
            {
                "absolute" => Math.Abs(sum),
                "positive" => Math.Max(sum, 0),
                "negative" => Math.Max(-sum, 0),
                _ => sum,
            };
        }
        var clip = Percentile(values.Select(Math.Abs).ToArray(), options.ClipPercentile);
        var colormap = Colormaps.Get(options.View == "gray" || options.View == "rgb" ? "gray" : options.Colormap);
        var image = new Image<Rgb24>(p.Width, p.Height);
        for (var i = 0; i < values.Length; i++)
        {
            var normalised = clip > 0 ? Math.Clamp(values[i] / clip, -1, 1) : 0;
            var (r, g, b) = colormap(options.Sign == "diverging" ? (normalised + 1) / 2 : normalised);
            image[i % p.Width, i / p.Width] = new Rgb24(r, g, b);
        }
        return image;
    }

    /// <summary>The classic guided-backprop picture: (v − mean) / std · 0.1 + 0.5 per image, clipped to [0, 1].</summary>
    private static Image<Rgb24> Standardised(float[] map, Preprocessing p)
    {
        var mean = map.Average();
        var std = Math.Sqrt(map.Select(v => (v - mean) * (v - mean)).Average());
        byte Scale(float v) => (byte)Math.Round(255 * Math.Clamp((v - mean) / (std + 1e-5) * 0.1 + 0.5, 0, 1));
        var image = new Image<Rgb24>(p.Width, p.Height);
        for (var y = 0; y < p.Height; y++)
        for (var x = 0; x < p.Width; x++)
        {
            var (r, g, b) = MapLayout.Rgb(map, p, x, y);
            image[x, y] = new Rgb24(Scale(r), Scale(g), Scale(b));
        }
        return image;
    }

    private static double Percentile(double[] values, double percentile)
    {
        Array.Sort(values);
        return values.Length == 0 ? 0 : values[(int)Math.Round(percentile / 100 * (values.Length - 1))];
    }

    private static void Resize(Image<Rgb24> image, int width, int height)
    {
        if (image.Width != width || image.Height != height)
            image.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(width, height), Mode = ResizeMode.Stretch, Sampler = KnownResamplers.Triangle }));
    }
}
