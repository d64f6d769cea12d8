using Microsoft.AspNetCore.Http.Features;
using SaliencyService.Api.Errors;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// A body limit on one request (<c>Saliency:MaxRequestBodyBytes</c> for predict and explain, the
/// model's for an import): /v1's multipart and /v2's bodies alike, as sent and, where the body comes
/// compressed, as decoded (<see cref="ContentCoding"/>).
/// </summary>
public static class RequestBodyLimit
{
    /// <summary>
    /// Caps what Kestrel reads of this body, refuses a declared length over the limit at once (413),
    /// and decodes a compressed body under the same limit.
    /// </summary>
    public static void Apply(HttpRequest request, long limit)
    {
        var feature = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false }) feature.MaxRequestBodySize = limit;
        if (request.ContentLength > limit) throw TooLarge(limit);
        ContentCoding.Decode(request, limit);
    }

    /// <summary>The whole body under the limit (/v2's JSON and binary calls, whose header says where the tensors start).</summary>
    public static async Task<byte[]> ReadAllAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        Apply(request, limit);
        // Sized from the declared length (none once a compressed body is decoded), so a plain body is
        // read into its array once instead of through a doubling buffer and a last copy.
        using var buffer = new MemoryStream((int)Math.Min(request.ContentLength ?? 0, Array.MaxLength));
        try
        {
            await request.Body.CopyToAsync(buffer, cancellationToken);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(limit);
        }
        return buffer.Length == buffer.Capacity ? buffer.GetBuffer() : buffer.ToArray();
    }

    public static ProblemException TooLarge(long limit) => ProblemException.TooLarge($"The request body exceeds {limit} bytes.");
}
