using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain;

namespace SaliencyService.Api.Errors;

/// <summary>What an exception means to a client: one table for every surface (problem+json on /v1, the protocol's error on /v2).</summary>
public static class Problems
{
    /// <summary>
    /// One failure as a client sees it; <see cref="Expected"/> false means a bug or a failing host (a
    /// full disk), logged with its exception, whose own message (paths, say) the client never sees.
    /// </summary>
    public sealed record Problem(int Status, string Title, string Detail, int? RetryAfterSeconds = null, bool Expected = true);

    public static Problem Describe(Exception exception) => exception switch
    {
        ProblemException p => new(p.StatusCode, p.Title, p.Detail, p.RetryAfterSeconds),
        InvalidArgumentException e => new(StatusCodes.Status400BadRequest, "Bad request", e.Message),
        InputTooLargeException e => new(StatusCodes.Status413PayloadTooLarge, "Payload too large", e.Message),
        UnsupportedFormatException e => new(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type", e.Message),
        UnsupportedModelException e => new(StatusCodes.Status422UnprocessableEntity, "Unprocessable model or request", e.Message),
        // A served model passed its import's run on a valid input: one that fails now fails on what it was given
        // (a free image size too small for its strided layers, a value its graph cannot take).
        OnnxRuntimeException e => new(StatusCodes.Status422UnprocessableEntity, "Unprocessable model or request",
            CannotRun(e)),
        BadHttpRequestException b => new(b.StatusCode, b.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Payload too large" : "Bad request", b.Message),
        InvalidDataException i => new(StatusCodes.Status400BadRequest, "Bad request", "Malformed request body: " + i.Message),
        IOException e when DiskFull(e) => new(StatusCodes.Status507InsufficientStorage, "Insufficient storage",
            "The server's disk is full: nothing of this request was kept. Retry once space is freed (deleting a model frees its files).",
            Expected: false),
        _ => new(StatusCodes.Status500InternalServerError, "Internal server error", "An unexpected error occurred; it has been logged.", Expected: false),
    };

    /// <summary>
    /// Whether a write failed for want of space: ENOSPC or EDQUOT (.NET keeps the errno as the
    /// HResult on Unix), ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL on Windows.
    /// </summary>
    public static bool DiskFull(IOException e) => e.HResult is 28 or 122 or unchecked((int)0x80070070) or unchecked((int)0x80070027);

    /// <summary>What a client is told when the model fails on its input: the native library's first line.</summary>
    public static string CannotRun(Exception e) => "The model cannot run on this input: " + e.Message.Split('\n')[0];
}
