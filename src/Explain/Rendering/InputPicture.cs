using SaliencyService.Contracts;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Explain.Rendering;

/// <summary>
/// The picture a tensor input stands for: preprocessing inverted, pixel = (v·std[c] + mean[c]) / scale,
/// so maps of tensor uploads can be overlaid too.
/// </summary>
public static class InputPicture
{
    public static Image<Rgb24> FromTensor(float[] sample, Preprocessing p)
    {
        var image = new Image<Rgb24>(p.Width, p.Height);
        for (var y = 0; y < p.Height; y++)
        for (var x = 0; x < p.Width; x++)
        {
            double Value(int c) => (MapLayout.At(sample, p, x, y, c) * p.Std[c] + p.Mean[c]) / p.Scale;
            byte Byte(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);
            image[x, y] = p.Channels switch
            {
                "RGB" => new Rgb24(Byte(Value(0)), Byte(Value(1)), Byte(Value(2))),
                "BGR" => new Rgb24(Byte(Value(2)), Byte(Value(1)), Byte(Value(0))),
                _ => new Rgb24(Byte(Value(0)), Byte(Value(0)), Byte(Value(0))),
            };
        }
        return image;
    }
}

/// <summary>Reads a sample in the model's layout by pixel and channel.</summary>
public static class MapLayout
{
    public static float At(float[] sample, Preprocessing p, int x, int y, int c) =>
        p.Layout == "NCHW" ? sample[c * p.Width * p.Height + y * p.Width + x] : sample[(y * p.Width + x) * Channels(p) + c];

    public static int Channels(Preprocessing p) => p.Channels == "GRAY" ? 1 : 3;

    /// <summary>The sample at (x, y) in RGB order (gray repeated).</summary>
    public static (float R, float G, float B) Rgb(float[] sample, Preprocessing p, int x, int y) => p.Channels switch
    {
        "RGB" => (At(sample, p, x, y, 0), At(sample, p, x, y, 1), At(sample, p, x, y, 2)),
        "BGR" => (At(sample, p, x, y, 2), At(sample, p, x, y, 1), At(sample, p, x, y, 0)),
        _ => (At(sample, p, x, y, 0), At(sample, p, x, y, 0), At(sample, p, x, y, 0)),
    };
}
