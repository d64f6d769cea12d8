using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SaliencyService.Explain.Tensors;

/// <summary>
/// Reads and writes NumPy's <c>.npy</c> format (versions 1–3) for little-endian float32,
/// C-ordered arrays: the one dtype the service exchanges.
/// </summary>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Parses a float32 array; anything else is a 400 naming what is wrong.</summary>
    public static FloatTensor Read(ReadOnlySpan<byte> bytes, long maxElements)
    {
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
            throw new InvalidArgumentException("The tensor is not a NumPy .npy file (bad magic bytes).");

        int major = bytes[6];
        int headerLength, headerStart;
        if (major == 1) { headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]); headerStart = 10; }
        else if (major is 2 or 3 && bytes.Length >= 12) { headerLength = checked((int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..])); headerStart = 12; }
        else throw new InvalidArgumentException($"Unsupported .npy format version {major}.");

        if (headerLength < 0 || headerStart + headerLength > bytes.Length)
            throw new InvalidArgumentException("The .npy header is truncated.");

        var header = Encoding.Latin1.GetString(bytes.Slice(headerStart, headerLength));
        var descr = DescrPattern().Match(header);
        var fortran = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !fortran.Success || !shapeMatch.Success)
            throw new InvalidArgumentException("The .npy header is malformed.");
        if (descr.Groups[1].Value is not ("<f4" or "=f4"))
            throw new InvalidArgumentException($"The tensor must be float32 ('<f4'), not '{descr.Groups[1].Value}'.");
        if (fortran.Groups[1].Value == "True")
            throw new InvalidArgumentException("Fortran-ordered .npy arrays are not supported; save a C-ordered array.");

        var shape = ParseShape(shapeMatch.Groups[1].Value);
        long count;
        try { count = FloatTensor.ElementCount(shape); }
        catch (OverflowException) { throw new InputTooLargeException("The tensor's shape is absurdly large."); }
        if (count > maxElements)
            throw new InputTooLargeException($"The tensor has {count} elements; the limit is {maxElements}.");

        var payload = bytes[(headerStart + headerLength)..];
        if (payload.Length != count * sizeof(float))
            throw new InvalidArgumentException(
                $"The .npy data holds {payload.Length} bytes but shape ({string.Join(", ", shape)}) needs {count * sizeof(float)}.");

        var data = new float[count];
        payload.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Big-endian hosts are not supported.");
        return new FloatTensor(data, shape);
    }

    /// <summary>Writes a float32 array as a version 1.0 <c>.npy</c> file.</summary>
    public static byte[] Write(ReadOnlySpan<float> data, IReadOnlyList<long> shape)
    {
        var dims = shape.Count == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        // Header (magic + version + length + dict + '\n') is padded to a multiple of 64 bytes.
        var unpadded = 10 + dict.Length + 1;
        var header = dict + new string(' ', (64 - unpadded % 64) % 64) + "\n";

        var payload = System.Runtime.InteropServices.MemoryMarshal.AsBytes(data);
        var result = new byte[10 + header.Length + payload.Length];
        Magic.CopyTo(result, 0);
        result[6] = 1;
        result[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8), (ushort)header.Length);
        Encoding.Latin1.GetBytes(header, result.AsSpan(10));
        payload.CopyTo(result.AsSpan(10 + header.Length));
        return result;
    }

    private static long[] ParseShape(string tuple)
    {
        var parts = tuple.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var shape = new long[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i].TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new InvalidArgumentException($"The .npy shape '({tuple})' is malformed.");
        }
        return shape;
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
