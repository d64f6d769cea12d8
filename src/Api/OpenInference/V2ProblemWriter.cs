namespace SaliencyService.Api.OpenInference;

/// <summary>
/// The protocol's error object for what the framework itself answers under <c>/v2</c>, beside the
/// endpoints' own errors (<see cref="V2ErrorFilter"/>): a route or method that does not exist, the
/// rate limit, a request refused before its endpoint ran. <c>{"error": "..."}</c> with the
/// problem's detail, else its title and the request; <c>/v1</c> keeps problem+json.
/// </summary>
public sealed class V2ProblemWriter : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => context.HttpContext.Request.Path.StartsWithSegments("/v2");

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var request = context.HttpContext.Request;
        var problem = context.ProblemDetails;
        var message = problem.Detail ?? $"{problem.Title ?? "Error"}: {request.Method} {request.Path}";
        return new ValueTask(context.HttpContext.Response.WriteAsJsonAsync(new V2Error(message)));
    }
}
