using System.Diagnostics;
using System.Globalization;

namespace SaliencyService.Api.Observability;

/// <summary>
/// Where one request's time went inside the service, sent back as a <c>Server-Timing</c> header
/// (W3C Server Timing, shown by browsers' developer tools): <c>read</c> (the body received and
/// decoded), <c>queue</c> (waiting for a slot or for the batch to run), <c>predict</c> or
/// <c>explain</c> (the engine's work; a batched prediction says how many samples shared its run),
/// <c>cache</c> on a cached map and <c>render</c> (a PNG or JSON answer's picture drawn); an import
/// reports <c>upload</c> (the model received, hashed and written), <c>check</c> (its checks, in an
/// isolated child process or here) and <c>build</c> (what the service serves it with, built as the
/// check's verdict says). What a client measures beyond their
/// sum is HTTP, routing and writing the answer. Timed per request through an async-local, so any
/// stage on the request's own flow can add itself without being handed the request.
/// </summary>
public sealed class ServerTiming
{
    public const string Header = "Server-Timing";

    private static readonly AsyncLocal<ServerTiming?> Ambient = new();
    private readonly List<string> _entries = [];
    private readonly Lock _lock = new();

    /// <summary>The current request's timing; null outside a timed request (gRPC, background work).</summary>
    public static ServerTiming? Current => Ambient.Value;

    /// <summary>Times the rest of the request; the header is written when the response starts.</summary>
    public static async Task TrackAsync(HttpContext context, Func<Task> next)
    {
        var timing = new ServerTiming();
        Ambient.Value = timing; // restored when this async method returns: it never outlives the request
        context.Response.OnStarting(() =>
        {
            var value = timing.Value();
            if (value.Length > 0) context.Response.Headers[Header] = value;
            return Task.CompletedTask;
        });
        await next();
    }

    /// <summary>Adds a stage to the current request's timing (none outside a request).</summary>
    public static void Add(string name, long startTimestamp, string? description = null) =>
        Current?.Record(name, Stopwatch.GetElapsedTime(startTimestamp), description);

    public void Record(string name, TimeSpan duration, string? description = null)
    {
        var entry = description is null
            ? string.Create(CultureInfo.InvariantCulture, $"{name};dur={duration.TotalMilliseconds:0.###}")
            : string.Create(CultureInfo.InvariantCulture, $"{name};desc=\"{description}\";dur={duration.TotalMilliseconds:0.###}");
        lock (_lock) _entries.Add(entry);
    }

    private string Value()
    {
        lock (_lock) return string.Join(", ", _entries);
    }
}
