using SaliencyService.Api.Errors;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Explain;

namespace SaliencyService.Api.Security;

/// <summary>
/// Guards endpoints with the configured API key (header <c>X-Api-Key</c>): 401 without a key,
/// 403 with a wrong one. Keys are compared as SHA-256 digests in constant time, so neither the
/// content nor the length of the key leaks through timing. No key configured: open.
/// </summary>
public sealed class ApiKeyFilter(IOptions<SaliencyOptions> options, bool inference) : IEndpointFilter
{
    public const string Header = "X-Api-Key";

    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        Check(context.HttpContext.Request.Headers[Header].ToString(), options.Value, inference);
        return next(context);
    }

    /// <summary>401 without the key, 403 with a wrong one, where the configuration asks for it (HTTP header, gRPC metadata).</summary>
    public static void Check(string? sent, SaliencyOptions options, bool inference)
    {
        var configured = options.ApiKey;
        if (string.IsNullOrEmpty(configured) || (inference && !options.ApiKeyForInference)) return;
        if (string.IsNullOrEmpty(sent))
            throw new ProblemException(401, "Unauthorized", $"This endpoint needs an API key in the {Header} header.");
        if (!CryptographicOperations.FixedTimeEquals(Digest(sent), Digest(configured)))
            throw new ProblemException(403, "Forbidden", "The API key is not valid.");
    }

    private static byte[] Digest(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
