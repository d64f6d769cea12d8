using Microsoft.AspNetCore.Http.Features;
using SaliencyService.Api.Errors;

namespace SaliencyService.Api.Inputs;

/// <summary>The predict/explain body limit (<c>Saliency:MaxRequestBodyBytes</c>) on one request: /v1's multipart and /v2's bodies alike.</summary>
public static class RequestBodyLimit
{
    /// <summary>Caps what Kestrel reads of this body, and refuses a declared length over the limit at once (413).</summary>
    public static void Apply(HttpRequest request, long limit)
    {
        var feature = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false }) feature.MaxRequestBodySize = limit;
        if (request.ContentLength > limit) throw TooLarge(limit);
    }

    public static ProblemException TooLarge(long limit) => ProblemException.TooLarge($"The request body exceeds {limit} bytes.");
}
