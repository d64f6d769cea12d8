using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace SaliencyService.Explain.Rendering;

/// <summary>
/// Draws an attribution map as a PNG the size of the uploaded image (see <see cref="RenderOptions"/>),
/// as 8-bit RGB pixels throughout: drawn at the map's size, stretched to the picture's, blended
/// over it for an overlay, written by <see cref="PngWriter"/>.
/// </summary>
public static class SaliencyRenderer
{
    /// <param name="width">The uploaded picture's width (the model input's for a tensor).</param>
    /// <param name="height">Its height.</param>
    /// <param name="background">The picture's pixels, width × height RGB; asked for by overlays only.</param>
    public static byte[] Png(AttributionMap attribution, Preprocessing p, RenderOptions options, int width, int height, Func<byte[]> background)
    {
        var pixels = Resized(Draw(attribution, p, options), p.Width, p.Height, width, height);
        if (options.View == "overlay") PixelBytes.Blend(pixels, background(), (float)options.Alpha);
        return PngWriter.Encode(pixels, width, height);
    }

    private static byte[] Draw(AttributionMap attribution, Preprocessing p, RenderOptions options)
    {
        // One value per pixel ([H, W]): Grad-CAM's, or SmoothGrad's over it.
        var cam = attribution.MapShape.Length == 2;
        var colour = !cam && MapLayout.Channels(p) == 3;
        var layout = MapLayout.Of(p);
        if (options.View == "rgb" && colour) return Standardised(attribution.Map, layout, p.Width * p.Height);

        // One value per pixel: channels summed (as Captum does), then the sign rule.
        var map = attribution.Map;
        var values = new double[p.Width * p.Height];
        for (var i = 0; i < values.Length; i++)
            values[i] = cam ? map[i] : colour ? layout.At(map, i, layout.Red) + layout.At(map, i, layout.Green) + layout.At(map, i, layout.Blue) : layout.At(map, i, layout.Red);
        switch (options.Sign)
        {
            case "absolute": foreach (ref var v in values.AsSpan()) v = Math.Abs(v); break;
            case "positive": foreach (ref var v in values.AsSpan()) v = Math.Max(v, 0); break;
            case "negative": foreach (ref var v in values.AsSpan()) v = Math.Max(-v, 0); break;
        }
        var magnitudes = new double[values.Length];
        for (var i = 0; i < values.Length; i++) magnitudes[i] = Math.Abs(values[i]);
        var clip = Percentile(magnitudes, options.ClipPercentile);

        var colours = Colormaps.Table(options.View == "gray" || options.View == "rgb" ? "gray" : options.Colormap);
        var diverging = options.Sign == "diverging";
        var pixels = new byte[values.Length * 3];
        for (var i = 0; i < values.Length; i++)
        {
            var normalised = clip > 0 ? Math.Clamp(values[i] / clip, -1, 1) : 0;
            var level = 3 * (int)Math.Round((diverging ? (normalised + 1) / 2 : normalised) * (Colormaps.Levels - 1)); // NaN: 0
            colours.AsSpan(level, 3).CopyTo(pixels.AsSpan(3 * i));
        }
        return pixels;
    }

    /// <summary>The classic guided-backprop picture: (v − mean) / std · 0.1 + 0.5 per image, clipped to [0, 1].</summary>
    private static byte[] Standardised(float[] map, MapLayout layout, int count)
    {
        var (mean, std) = PixelBytes.MeanAndDeviation(map);
        var scale = 255 * 0.1 / (std + 1e-5);
        var pixels = new byte[count * 3];
        int[] colours = [layout.Red, layout.Green, layout.Blue];
        for (var colour = 0; colour < 3; colour++)
            PixelBytes.Affine(layout.Plane(map, colours[colour]), layout.PixelStep, (float)scale, (float)(255 * 0.5 - mean * scale), pixels.AsSpan(colour), 3, count);
        return pixels;
    }

    /// <summary>The value at <paramref name="percentile"/> of the sorted values (reorders them).</summary>
    private static double Percentile(double[] values, double percentile) =>
        values.Length == 0 ? 0 : Selection.Smallest(values, (int)Math.Round(percentile / 100 * (values.Length - 1)));

    /// <summary>Stretched to width × height by a triangle (bilinear) filter, as the picture it is drawn for.</summary>
    private static byte[] Resized(byte[] pixels, int fromWidth, int fromHeight, int width, int height)
    {
        if (fromWidth == width && fromHeight == height) return pixels;
        if (width >= fromWidth && height >= fromHeight) return Upscaling.Bilinear(pixels, fromWidth, fromHeight, width, height);
        using var image = Image.LoadPixelData<Rgb24>(pixels, fromWidth, fromHeight);
        image.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(width, height), Mode = ResizeMode.Stretch, Sampler = KnownResamplers.Triangle }));
        return InputPicture.Pixels(image);
    }
}
