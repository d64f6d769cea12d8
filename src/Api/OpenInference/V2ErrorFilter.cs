using System.Globalization;
using SaliencyService.Api.Errors;

namespace SaliencyService.Api.OpenInference;

/// <summary>Every /v2 failure as the protocol's <c>{"error": "..."}</c>, with the status the one table (<see cref="Problems"/>) gives it.</summary>
public sealed class V2ErrorFilter(ILogger<V2ErrorFilter> logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (OperationCanceledException) when (context.HttpContext.RequestAborted.IsCancellationRequested)
        {
            throw; // the client went away; there is nobody to answer
        }
        catch (Exception e)
        {
            var problem = Problems.Describe(e);
            if (!problem.Expected) logger.LogError(e, "Unhandled error on {Method} {Path}", context.HttpContext.Request.Method, context.HttpContext.Request.Path);
            if (problem.RetryAfterSeconds is { } retry)
                context.HttpContext.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
            return TypedResults.Json(new V2Error(problem.Detail), statusCode: problem.Status);
        }
    }
}
