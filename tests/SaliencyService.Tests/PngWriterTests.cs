using SaliencyService.Explain.Rendering;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>The service's PNGs decode, in ImageSharp's independent decoder, to exactly the pixels written.</summary>
public sealed class PngWriterTests
{
    public static TheoryData<int, int, string> Pictures() => new()
    {
        { 1, 1, "noise" }, { 2, 3, "noise" }, { 10, 4, "noise" }, { 11, 7, "noise" }, { 37, 23, "noise" },
        { 224, 224, "noise" }, { 64, 48, "horizontal" }, { 64, 48, "vertical" }, { 65, 33, "diagonal" }, { 300, 20, "flat" },
    };

    [Theory]
    [MemberData(nameof(Pictures))]
    public void A_png_decodes_to_its_pixels(int width, int height, string pattern)
    {
        var pixels = Pixels(width, height, pattern);
        using var decoded = Image.Load<Rgb24>(PngWriter.Encode(pixels, width, height));

        Assert.Equal((width, height), (decoded.Width, decoded.Height));
        var read = new byte[pixels.Length];
        decoded.CopyPixelDataTo(read);
        Assert.Equal(pixels, read);
    }

    /// <summary>Ramps predicted from their neighbours (Up for one, Sub for the other) compress far below their raw size; unfiltered they would not.</summary>
    [Theory]
    [InlineData("horizontal")]
    [InlineData("vertical")]
    public void Smooth_pictures_compress(string pattern)
    {
        var (width, height) = (256, 256);
        var png = PngWriter.Encode(Pixels(width, height, pattern), width, height);
        Assert.True(png.Length < width * height * 3 / 20, $"{pattern}: {png.Length} bytes");
    }

    /// <summary>
    /// The image data is one zlib stream, deflated in pieces: the runtime's zlib, which checks the
    /// stream's Adler-32, inflates it to the filtered rows (a filter byte and the row's bytes each),
    /// and refuses it with one bit of that checksum flipped.
    /// </summary>
    [Theory]
    [InlineData(224, 224)]
    [InlineData(300, 20)]
    [InlineData(11, 7)]
    public void The_image_data_is_one_zlib_stream_whose_checksum_holds(int width, int height)
    {
        var png = PngWriter.Encode(Pixels(width, height, "noise"), width, height);
        var idat = 8 + 12 + 13; // after the signature and IHDR
        Assert.Equal("IDAT"u8.ToArray(), png[(idat + 4)..(idat + 8)]);
        var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(idat));
        long Inflated()
        {
            using var zlib = new System.IO.Compression.ZLibStream(new MemoryStream(png, idat + 8, length), System.IO.Compression.CompressionMode.Decompress);
            var rows = new MemoryStream();
            zlib.CopyTo(rows);
            return rows.Length;
        }

        Assert.Equal((width * 3 + 1) * height, Inflated());
        png[idat + 8 + length - 1] ^= 1;
        Assert.Throws<InvalidDataException>(() => Inflated());
    }

    [Fact]
    public void Pixels_of_the_wrong_size_are_refused()
    {
        Assert.Throws<ArgumentException>(() => PngWriter.Encode(new byte[11], 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => PngWriter.Encode(Array.Empty<byte>(), 0, 1));
    }

    /// <summary>
    /// Noise, ramps whose steps vary from pixel to pixel (so that deflate alone finds few runs) left
    /// to right, top to bottom or both, or one colour.
    /// </summary>
    private static byte[] Pixels(int width, int height, string pattern)
    {
        var random = new Random(width * 1000 + height);
        var pixels = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
        for (var x = 0; x < width; x++)
        for (var c = 0; c < 3; c++)
            pixels[(y * width + x) * 3 + c] = pattern switch
            {
                "noise" => (byte)random.Next(256),
                "horizontal" => (byte)(x * x * (c + 1) + y * 7),
                "vertical" => (byte)(y * y * (c + 1) + x * 7),
                "diagonal" => (byte)(x * x + y * y + c * 40),
                _ => (byte)(50 * c + 20),
            };
        return pixels;
    }
}
