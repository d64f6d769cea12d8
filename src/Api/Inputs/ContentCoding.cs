using SaliencyService.Api.Errors;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// Bodies are read as sent. A compressed one (<c>Content-Encoding: gzip</c>, as tritonclient's
/// request compression sends) is refused with a 415 naming the header, not parsed as if it were
/// plain (a 400 about its first byte).
/// </summary>
public static class ContentCoding
{
    public static void EnsureIdentity(HttpRequest request)
    {
        var coding = request.Headers.ContentEncoding.ToString().Trim();
        if (coding.Length > 0 && !coding.Equals("identity", StringComparison.OrdinalIgnoreCase))
            throw ProblemException.UnsupportedMedia($"Content-Encoding '{coding}' is not supported: send the body uncompressed.");
    }
}
