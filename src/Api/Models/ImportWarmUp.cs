using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using SaliencyService.Explain.Isolation;

namespace SaliencyService.Api.Models;

/// <summary>
/// The service's side of an import, run once before readiness on the bundled demo CNN and never
/// published: its multipart upload read from memory into a temporary folder, checked in the spare
/// child, loaded and built from the child's plan and verdict (<see cref="ModelStore.StageAsync"/>),
/// its descriptor written as the answer's JSON. Otherwise the first user import after a start
/// compiles all that code (resnet18 straight after readiness with no demos seeded: 1.13–1.46 s,
/// against 0.97–1.07 s after this warm-up and ~0.75 s for the imports after it).
/// </summary>
public sealed class ImportWarmUp(ModelStore store, IOptions<JsonOptions> json, ILogger<ImportWarmUp> logger)
{
    /// <summary>The name the warm-up's model is staged under (never published).</summary>
    private const string Name = "import-warm-up";

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (ChildCommands.WarmUpModel is not { } demo || !File.Exists(Path.Combine(demo, StoreLayout.ModelFile))) return;
        var started = Stopwatch.GetTimestamp();
        try
        {
            var request = await UploadOf(demo, cancellationToken);
            // Outside the store: nothing of it is ever seen there, by this process or a replica.
            var staging = Directory.CreateTempSubdirectory("saliency-import-warm-up-").FullName;
            try
            {
                var upload = await ModelUploadReader.ReadAsync(request, staging, long.MaxValue, cancellationToken);
                var model = await store.StageAsync(staging, Name, upload.ManifestJson, cancellationToken, upload.Sha256);
                try
                {
                    // With the answer's own options, whose serializer is built on first use (29–39 ms of the first import's answer).
                    await JsonSerializer.SerializeAsync(Stream.Null, model.Descriptor, json.Value.SerializerOptions, cancellationToken);
                }
                finally
                {
                    model.Retire();
                }
            }
            finally
            {
                Directory.Delete(staging, recursive: true);
            }
            logger.LogInformation("Import path warmed up in {Seconds:0.0} s", Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Only a head start: an import meets any failure again and reports it.
            logger.LogWarning(e, "The import warm-up on the bundled demo model failed");
        }
    }

    /// <summary>The demo folder as a client uploads a model: a multipart form with its file and manifest.</summary>
    private static async Task<HttpRequest> UploadOf(string demo, CancellationToken cancellationToken)
    {
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(await File.ReadAllBytesAsync(Path.Combine(demo, StoreLayout.ModelFile), cancellationToken)), "file", StoreLayout.ModelFile },
            { new StringContent(Name), "name" },
        };
        var manifest = Path.Combine(demo, StoreLayout.ManifestFile);
        if (File.Exists(manifest)) form.Add(new StringContent(await File.ReadAllTextAsync(manifest, cancellationToken)), "manifest");
        var body = new MemoryStream();
        await form.CopyToAsync(body, cancellationToken);
        body.Position = 0;
        var request = new DefaultHttpContext().Request;
        request.ContentType = form.Headers.ContentType!.ToString();
        request.Body = body;
        return request;
    }
}
