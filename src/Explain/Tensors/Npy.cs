using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace SaliencyService.Explain.Tensors;

/// <summary>
/// Reads and writes NumPy's <c>.npy</c> format (versions 1–3) for little-endian float32,
/// C-ordered arrays: the one dtype the service exchanges.
/// </summary>
public static class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>The media type of a <c>.npy</c> body.</summary>
    public const string MediaType = "application/x-npy";

    /// <summary>Parses a float32 array; anything else is a 400 naming what is wrong.</summary>
    public static FloatTensor Read(ReadOnlySpan<byte> bytes, long maxElements)
    {
        var headerEnd = HeaderEnd(bytes);
        if (headerEnd > bytes.Length) throw Truncated();
        var (shape, count) = ParseHeader(bytes[..(int)headerEnd], maxElements);
        var payload = bytes[(int)headerEnd..];
        if (payload.Length != count * sizeof(float)) throw SizeMismatch(payload.Length, shape, count);
        var data = new float[count];
        payload.CopyTo(MemoryMarshal.AsBytes(data.AsSpan()));
        return new FloatTensor(data, shape);
    }

    /// <summary>
    /// <see cref="Read(ReadOnlySpan{byte}, long)"/> from a stream as it arrives: the payload goes
    /// straight into the tensor, without a copy of the whole file first.
    /// </summary>
    /// <param name="maxPayloadBytes">
    /// Most the stream can still hold (a request body's length or limit): a header declaring more is
    /// refused before the tensor is allocated, so a few bytes cannot make the reader allocate gigabytes.
    /// </param>
    public static async Task<FloatTensor> ReadAsync(Stream stream, long maxElements, long maxPayloadBytes, CancellationToken cancellationToken)
    {
        var prefix = new byte[VersionedPrefix];
        var got = await stream.ReadAtLeastAsync(prefix, prefix.Length, throwOnEndOfStream: false, cancellationToken);
        var headerEnd = HeaderEnd(prefix.AsSpan(0, got));
        if (headerEnd > MaxHeaderBytes) throw new InvalidArgumentException($"The .npy header is longer than {MaxHeaderBytes} bytes.");
        var header = new byte[Math.Max(headerEnd, got)];
        prefix.AsSpan(0, got).CopyTo(header);
        if (got < headerEnd && await stream.ReadAtLeastAsync(header.AsMemory(got), (int)headerEnd - got, throwOnEndOfStream: false, cancellationToken) < headerEnd - got)
            throw Truncated();
        var (shape, count) = ParseHeader(header.AsSpan(0, (int)headerEnd), maxElements);
        if (count * sizeof(float) > maxPayloadBytes)
            throw new InvalidArgumentException(
                $"The .npy shape ({string.Join(", ", shape)}) needs {count * sizeof(float)} bytes; the request body holds at most {maxPayloadBytes}.");

        var data = new float[count];
        long expected = count * sizeof(float), total = 0;
        void Take(ReadOnlySpan<byte> chunk)
        {
            if (total + chunk.Length <= expected) chunk.CopyTo(MemoryMarshal.AsBytes(data.AsSpan())[(int)total..]);
            total += chunk.Length;
        }
        Take(header.AsSpan((int)headerEnd));
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0) Take(buffer.AsSpan(0, read));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (total != expected) throw SizeMismatch(total, shape, count);
        return new FloatTensor(data, shape);
    }

    /// <summary>Magic, version and header length: 10 bytes in version 1, 12 in versions 2 and 3.</summary>
    private const int VersionedPrefix = 12;

    /// <summary>NumPy itself refuses headers over 10,000 bytes unless told otherwise.</summary>
    private const int MaxHeaderBytes = 1 << 16;

    /// <summary>Where the header ends and the payload starts, from the file's first bytes (magic, version, length).</summary>
    private static long HeaderEnd(ReadOnlySpan<byte> prefix)
    {
        if (prefix.Length < 10 || !prefix[..6].SequenceEqual(Magic))
            throw new InvalidArgumentException("The tensor is not a NumPy .npy file (bad magic bytes).");
        int major = prefix[6];
        if (major == 1) return 10L + BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..]);
        if (major is 2 or 3 && prefix.Length >= 12) return 12L + BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..]);
        throw new InvalidArgumentException($"Unsupported .npy format version {major}.");
    }

    /// <summary>The shape and element count a whole header (prefix included) declares, checked against the limit.</summary>
    private static (long[] Shape, long Count) ParseHeader(ReadOnlySpan<byte> header, long maxElements)
    {
        var parsed = NpyHeader.Parse(Encoding.Latin1.GetString(header[(header[6] == 1 ? 10 : 12)..]));
        if (parsed.Descr is not ("<f4" or "=f4"))
            throw new InvalidArgumentException($"The tensor must be float32 ('<f4'), not {(parsed.Descr is null ? "a structured dtype" : $"'{parsed.Descr}'")}.");
        if (parsed.FortranOrder)
            throw new InvalidArgumentException("Fortran-ordered .npy arrays are not supported; save a C-ordered array.");

        var shape = parsed.Shape;
        long count;
        try { count = FloatTensor.ElementCount(shape); }
        catch (OverflowException) { throw new InputTooLargeException("The tensor's shape is absurdly large."); }
        if (count > maxElements)
            throw new InputTooLargeException($"The tensor has {count} elements; the limit is {maxElements}.");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Big-endian hosts are not supported.");
        return (shape, count);
    }

    private static InvalidArgumentException Truncated() => new("The .npy header is truncated.");

    private static InvalidArgumentException SizeMismatch(long payloadBytes, long[] shape, long count) =>
        new($"The .npy data holds {payloadBytes} bytes but shape ({string.Join(", ", shape)}) needs {count * sizeof(float)}.");

    /// <summary>Writes a float32 array as a version 1.0 <c>.npy</c> file.</summary>
    public static byte[] Write(ReadOnlySpan<float> data, IReadOnlyList<long> shape)
    {
        var header = Header(shape);
        var result = new byte[header.Length + data.Length * sizeof(float)];
        header.CopyTo(result, 0);
        MemoryMarshal.AsBytes(data).CopyTo(result.AsSpan(header.Length));
        return result;
    }

    /// <summary>
    /// The bytes of a version 1.0 <c>.npy</c> file before its float32 data of <paramref name="shape"/>:
    /// magic, version, length and the header's dict, padded to a multiple of 64 bytes.
    /// </summary>
    public static byte[] Header(IReadOnlyList<long> shape)
    {
        var dims = shape.Count == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        var dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}";
        var unpadded = 10 + dict.Length + 1;
        var text = dict + new string(' ', (64 - unpadded % 64) % 64) + "\n";
        var header = new byte[10 + text.Length];
        Magic.CopyTo(header, 0);
        header[6] = 1;
        header[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)text.Length);
        Encoding.Latin1.GetBytes(text, header.AsSpan(10));
        return header;
    }
}
