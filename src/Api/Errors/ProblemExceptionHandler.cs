using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using SaliencyService.Explain;

namespace SaliencyService.Api.Errors;

/// <summary>
/// Turns every exception into RFC 9457 problem+json: the client's mistakes keep their 4xx status
/// and message; anything unexpected is logged and answered as a bare 500.
/// </summary>
public sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && context.RequestAborted.IsCancellationRequested)
            return true; // the client went away; there is nobody to answer

        var (status, title, detail) = exception switch
        {
            ProblemException p => (p.StatusCode, p.Title, p.Detail),
            BadHttpRequestException b => (b.StatusCode, b.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Payload too large" : "Bad request", b.Message),
            InvalidDataException i => (StatusCodes.Status400BadRequest, "Bad request", "Malformed request body: " + i.Message),
            _ => (StatusCodes.Status500InternalServerError, "Internal server error", "An unexpected error occurred; it has been logged."),
        };
        if (status >= 500 && exception is not ProblemException) logger.LogError(exception, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);

        context.Response.StatusCode = status;
        if (exception is ProblemException { RetryAfterSeconds: { } retry })
            context.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }
}
