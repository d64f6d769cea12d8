using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using SaliencyService.Api.Errors;

namespace SaliencyService.Api.Inputs;

/// <summary>One part of a multipart/form-data body: its form name, its file name if it has one, and its body as it arrives.</summary>
public sealed record MultipartPart(string? Name, string? FileName, Stream Body);

/// <summary>
/// A multipart/form-data body read part by part as it arrives (ASP.NET Core's
/// <see cref="MultipartReader"/>), never buffered whole: each reader takes what it needs from a
/// part straight off the connection. A body that ends early or breaks the multipart syntax is the
/// client's fault (400).
/// </summary>
public sealed class MultipartParts
{
    private readonly MultipartReader _reader;

    private MultipartParts(MultipartReader reader) => _reader = reader;

    /// <summary>The parts of <paramref name="request"/>'s body; a 415 saying <paramref name="expected"/> when it is not multipart/form-data.</summary>
    /// <param name="bufferSize">
    /// The most a read of a part returns: by default Kestrel's block (<see cref="ConnectionBuffers.BlockSize"/>,
    /// where ASP.NET Core reads 4 KiB: a 600 kB tensor took ~150 rounds of buffering, searching for
    /// the boundary and copying, and a model that only pools its input was answered at 811–1,005
    /// requests a second against 973–1,096 in 64 KiB). A model upload reads in larger blocks still:
    /// at 4 KiB, hashing and writing a 46 MB model took ~11k rounds.
    /// </param>
    public static MultipartParts Of(HttpRequest request, string expected, int bufferSize = ConnectionBuffers.BlockSize)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            throw ProblemException.UnsupportedMedia(expected);
        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary)) throw ProblemException.BadRequest("The multipart boundary is missing.");
        return new MultipartParts(new MultipartReader(boundary, request.Body, bufferSize));
    }

    /// <summary>The next part, or null after the last; a part without a readable Content-Disposition has no name.</summary>
    public async Task<MultipartPart?> NextAsync(CancellationToken cancellationToken)
    {
        var section = await ClientRead(() => _reader.ReadNextSectionAsync(cancellationToken), cancellationToken);
        if (section is null) return null;
        if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)) return new(null, null, section.Body);
        var fileName = (disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value?.Trim('"');
        return new(disposition.Name.Value?.Trim('"'), fileName, section.Body);
    }

    /// <summary>
    /// Runs a read of the client's body: its I/O and format errors (the body ended early, broke the
    /// multipart syntax) become a 400; errors of whatever the caller writes to stay server errors.
    /// </summary>
    public static async Task<T> ClientRead<T>(Func<Task<T>> read, CancellationToken cancellationToken)
    {
        try
        {
            return await read();
        }
        catch (Exception e) when (e is IOException or InvalidDataException && !cancellationToken.IsCancellationRequested)
        {
            throw ProblemException.BadRequest("Malformed multipart body: " + e.Message);
        }
    }
}
