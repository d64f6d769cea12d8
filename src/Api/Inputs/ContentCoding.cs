using System.IO.Compression;
using SaliencyService.Api.Errors;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// Compressed request bodies, as Triton takes them (tritonclient's request compression):
/// <c>Content-Encoding</c> gzip, deflate (zlib) or br is decoded as the body is read, and the
/// decoded body is held to the endpoint's own limit (413 beyond it), so a small compressed body
/// cannot expand past what a plain one may send. Another coding is a 415 naming the header; a body
/// its coding cannot decode is a 400.
/// </summary>
public static class ContentCoding
{
    /// <param name="limit">The most the decoded body may hold: the endpoint's body limit.</param>
    public static void Decode(HttpRequest request, long limit)
    {
        var coding = request.Headers.ContentEncoding.ToString().Trim().ToLowerInvariant();
        if (coding is "" or "identity") return;
        Stream decoded = coding switch
        {
            "gzip" or "x-gzip" => new GZipStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            "deflate" => new ZLibStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            "br" => new BrotliStream(request.Body, CompressionMode.Decompress, leaveOpen: true),
            _ => throw ProblemException.UnsupportedMedia($"Content-Encoding '{coding}' is not supported: send the body uncompressed, or gzip, deflate or br."),
        };
        request.HttpContext.Response.RegisterForDispose(decoded);
        request.Body = new DecodedBody(decoded, coding, limit);
        request.ContentLength = null; // the declared length is the compressed one: readers bound by the limit instead
    }

    /// <summary>The decoded body: corrupt coding is the client's 400, more than the limit its 413.</summary>
    private sealed class DecodedBody(Stream decoded, string coding, long limit) : Stream
    {
        private long _read;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                return Counted(decoded.Read(buffer, offset, count));
            }
            catch (InvalidDataException e)
            {
                throw Corrupt(e);
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return Counted(await decoded.ReadAsync(buffer, cancellationToken));
            }
            catch (InvalidDataException e)
            {
                throw Corrupt(e);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Counted(int read)
        {
            _read += read;
            if (_read > limit) throw RequestBodyLimit.TooLarge(limit);
            return read;
        }

        private ProblemException Corrupt(InvalidDataException e) => ProblemException.BadRequest($"The body is not valid {coding}: {e.Message}");

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
