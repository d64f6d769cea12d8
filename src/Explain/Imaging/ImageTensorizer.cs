using System.Buffers;
using SaliencyService.Contracts;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace SaliencyService.Explain.Imaging;

/// <summary>Turns a decoded image into one sample of the model input, as the manifest says.</summary>
public static class ImageTensorizer
{
    /// <summary>Number of floats of one sample.</summary>
    public static int SampleLength(Preprocessing p) => p.Height * p.Width * ChannelCount(p);

    public static int ChannelCount(Preprocessing p) => p.Channels == "GRAY" ? 1 : 3;

    /// <summary>
    /// Resizes (bilinear) to the model size and writes (pixel × scale − mean[c]) / std[c] into
    /// <paramref name="destination"/> in the model's layout and channel order.
    /// </summary>
    public static void Write(Image<Rgb24> image, Preprocessing p, Span<float> destination)
    {
        if (destination.Length != SampleLength(p)) throw new ArgumentException("Destination has the wrong length.", nameof(destination));

        var plane = p.Height * p.Width;
        var pixels = ArrayPool<Rgb24>.Shared.Rent(plane);
        try
        {
            CopyResized(image, p.Width, p.Height, pixels.AsSpan(0, plane));
            var channels = ChannelCount(p);
            var nchw = p.Layout == "NCHW";
            for (var c = 0; c < channels; c++)
            {
                var gain = (float)(p.Scale / p.Std[c]);
                var offset = (float)(-p.Mean[c] / p.Std[c]);
                for (var i = 0; i < plane; i++)
                {
                    var value = Channel(pixels[i], p.Channels, c) * gain + offset;
                    destination[nchw ? c * plane + i : i * channels + c] = value;
                }
            }
        }
        finally
        {
            ArrayPool<Rgb24>.Shared.Return(pixels);
        }
    }

    private static void CopyResized(Image<Rgb24> image, int width, int height, Span<Rgb24> destination)
    {
        if (image.Width == width && image.Height == height)
        {
            image.CopyPixelDataTo(destination);
            return;
        }
        using var resized = image.Clone(x => x.Resize(new ResizeOptions
        {
            Size = new Size(width, height),
            Mode = ResizeMode.Stretch,
            Sampler = KnownResamplers.Triangle, // bilinear
        }));
        resized.CopyPixelDataTo(destination);
    }

    private static float Channel(Rgb24 pixel, string order, int c) => order switch
    {
        "RGB" => c == 0 ? pixel.R : c == 1 ? pixel.G : pixel.B,
        "BGR" => c == 0 ? pixel.B : c == 1 ? pixel.G : pixel.R,
        _ => 0.299f * pixel.R + 0.587f * pixel.G + 0.114f * pixel.B, // ITU-R 601 luma, as PIL's "L"
    };
}
