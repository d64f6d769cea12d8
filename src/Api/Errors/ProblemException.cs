namespace SaliencyService.Api.Errors;

/// <summary>
/// A request the service cannot serve because of what the client sent (or asked for).
/// The API turns it into an RFC 9457 problem+json response with <see cref="StatusCode"/>.
/// </summary>
public class ProblemException(int statusCode, string title, string detail) : Exception(detail)
{
    public int StatusCode { get; } = statusCode;
    public string Title { get; } = title;
    public string Detail { get; } = detail;

    /// <summary>Seconds a client should wait before retrying (sent as Retry-After), if any.</summary>
    public int? RetryAfterSeconds { get; init; }

    public static ProblemException BadRequest(string detail) => new(400, "Bad request", detail);
    public static ProblemException NotFound(string detail) => new(404, "Not found", detail);
    public static ProblemException Conflict(string detail) => new(409, "Conflict", detail);
    public static ProblemException TooLarge(string detail) => new(413, "Payload too large", detail);
    public static ProblemException UnsupportedMedia(string detail) => new(415, "Unsupported media type", detail);
    public static ProblemException Unprocessable(string detail) => new(422, "Unprocessable model or request", detail);
    public static ProblemException Busy(string detail, int retryAfterSeconds) =>
        new(503, "Service busy", detail) { RetryAfterSeconds = retryAfterSeconds };
}
