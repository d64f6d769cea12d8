using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace SaliencyService.Explain.Imaging;

/// <summary>
/// Decodes uploaded images safely: only PNG and JPEG (recognised by content, not by name),
/// dimensions checked against a pixel budget before any pixel is decoded, EXIF orientation applied.
/// </summary>
public sealed class ImageLoader(long maxPixels)
{
    // A configuration that knows PNG and JPEG only, so every other format is refused by content.
    private static readonly Configuration Formats = new(new PngConfigurationModule(), new JpegConfigurationModule());

    public long MaxPixels { get; } = maxPixels;

    /// <summary>Decodes <paramref name="bytes"/> to 8-bit RGB, upright.</summary>
    public Image<Rgb24> Load(ReadOnlyMemory<byte> bytes, string partName)
    {
        if (bytes.Length == 0) throw new InvalidArgumentException($"The '{partName}' part is empty.");
        try
        {
            using (var probe = AsStream(bytes))
            {
                var info = Image.Identify(Formats, probe, out var format);
                if (info is null || format is null)
                    throw new UnsupportedFormatException($"The '{partName}' part is not a PNG or JPEG image.");
                var pixels = (long)info.Width * info.Height;
                if (info.Width <= 0 || info.Height <= 0)
                    throw new InvalidArgumentException($"The '{partName}' image declares no pixels.");
                if (pixels > MaxPixels)
                    throw new InputTooLargeException(
                        $"The '{partName}' image is {info.Width}×{info.Height} = {pixels} pixels; the limit is {MaxPixels}.");
            }

            using var stream = AsStream(bytes);
            var image = Image.Load<Rgb24>(Formats, stream);
            image.Mutate(x => x.AutoOrient());
            return image;
        }
        catch (ClientInputException) { throw; }
        catch (UnknownImageFormatException)
        {
            throw new UnsupportedFormatException($"The '{partName}' part is not a PNG or JPEG image.");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Corrupt files surface from ImageSharp's decoders as many exception types (even
            // NullReferenceException for some broken JPEGs): all of them mean a bad upload.
            throw new InvalidArgumentException($"The '{partName}' image could not be decoded ({e.GetType().Name}).");
        }
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> bytes) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(bytes.ToArray(), writable: false);
}
