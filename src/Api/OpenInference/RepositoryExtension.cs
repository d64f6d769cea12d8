using System.Text.Json;
using System.Text.Json.Serialization;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Models;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Api.Security;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// Triton's model repository calls over the store (REST and gRPC): the index lists every model
/// version this replica knows, <c>READY</c> or <c>UNAVAILABLE</c> with the reason it failed to load
/// (the only listing the protocol has: tritonclient's <c>get_model_repository_index</c>); a load
/// loads a model's folder now rather than at the next poll (after a failed load, or another
/// replica's replace). Models are added with <c>POST /v1/models</c> and removed with
/// <c>DELETE /v1/models/{name}</c>, not by a load's file parameters or an unload, which say so
/// (400); so the extension is not listed in the server metadata.
/// </summary>
public static class RepositoryExtension
{
    public const string Ready = "READY", Unavailable = "UNAVAILABLE";

    public static void Map(RouteGroupBuilder v2, IServiceProvider services)
    {
        v2.MapPost("/repository/index", IndexRouteAsync).WithName("V2RepositoryIndex")
            .WithSummary("Index of the models and their states (Triton's model repository extension); body {\"ready\": true} for the ready ones only")
            .Produces<IndexEntry[]>().Produces<V2Error>(StatusCodes.Status400BadRequest);
        var writes = v2.MapGroup("/repository/models/{name}").RequireRateLimiting(RateLimiting.Policy)
            .AddEndpointFilter(ActivatorUtilities.CreateInstance<ApiKeyFilter>(services, false));
        writes.MapPost("/load", LoadRouteAsync).WithName("V2RepositoryLoad")
            .WithSummary("Load the model's folder now (a version another replica published, or again after a failed load); " +
                         "optional body {\"parameters\": {...}}, without file or config overrides")
            .Produces(StatusCodes.Status200OK).Produces<V2Error>(StatusCodes.Status400BadRequest);
        writes.MapPost("/unload", UnloadRoute).WithName("V2RepositoryUnload")
            .WithSummary("Not offered: a model stops being served when it is deleted (DELETE /v1/models/{name})")
            .Produces<V2Error>(StatusCodes.Status400BadRequest);
    }

    /// <summary>One model version in the REST index, as Triton writes it.</summary>
    public sealed record IndexEntry(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("version")] string Version,
        [property: JsonPropertyName("state")] string State,
        [property: JsonPropertyName("reason")] string Reason);

    /// <summary>The index, ready versions only where <paramref name="readyOnly"/>.</summary>
    public static RepositoryIndexResponse Index(ModelStore store, bool readyOnly) => new()
    {
        Models =
        {
            store.Index().Where(e => !readyOnly || e.Reason is null).Select(e => new RepositoryIndexResponse.Types.ModelIndex
            {
                Name = e.Name, Version = e.Version.Name, State = e.Reason is null ? Ready : Unavailable, Reason = e.Reason ?? "",
            }),
        },
    };

    public static async Task LoadAsync(ModelStore store, string name, IEnumerable<string> parameters)
    {
        if (parameters.FirstOrDefault(p => p == "config" || p.StartsWith("file:", StringComparison.Ordinal)) is { } upload)
            throw ProblemException.BadRequest($"A load takes no '{upload}' here: import or replace a model with POST /v1/models (?replace=true).");
        await store.LoadAsync(name);
    }

    public static ProblemException UnloadRefused(string name) => ProblemException.BadRequest(
        $"Models here are not unloaded: DELETE /v1/models/{name} removes '{name}' from the store (and every replica); a load reloads it.");

    private static async Task<IResult> IndexRouteAsync(HttpRequest request, ModelStore store, CancellationToken cancellationToken)
    {
        var readyOnly = (await BodyAsync(request, cancellationToken)) is { ValueKind: JsonValueKind.Object } body
                        && body.TryGetProperty("ready", out var ready) && ready.ValueKind == JsonValueKind.True;
        // Triton's REST index is a bare array of {name, version, state, reason}.
        return TypedResults.Json(Index(store, readyOnly).Models.Select(m => new IndexEntry(m.Name, m.Version, m.State, m.Reason)).ToArray());
    }

    private static async Task<IResult> LoadRouteAsync(string name, HttpRequest request, ModelStore store, CancellationToken cancellationToken)
    {
        var parameters = (await BodyAsync(request, cancellationToken)) is { ValueKind: JsonValueKind.Object } body
                         && body.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object
            ? p.EnumerateObject().Select(o => o.Name).ToArray()
            : [];
        await LoadAsync(store, name, parameters);
        return TypedResults.Ok();
    }

    private static IResult UnloadRoute(string name) => throw UnloadRefused(name);

    /// <summary>The optional JSON body of a repository call; none is null.</summary>
    private static async Task<JsonElement?> BodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var body = await Inputs.RequestBodyLimit.ReadAllAsync(request, 64 * 1024, cancellationToken);
        if (body.Length == 0) return null; // tritonclient sends none for an index without "ready", or a plain load
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ProblemException.BadRequest("The body is not JSON: " + e.Message);
        }
    }
}
