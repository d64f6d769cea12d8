using SaliencyService.Api.Errors;
using System.Security.Cryptography;
using System.Text;
using SaliencyService.Api.Inputs;
using SaliencyService.Explain;

namespace SaliencyService.Api.Models;

/// <summary>A model upload streamed into a staging folder of the store, with the file's SHA-256 (hashed as it streamed in).</summary>
public sealed record ModelUpload(string? FileName, string? Name, string? ManifestJson, string Sha256);

/// <summary>
/// Reads <c>POST /v1/models</c> without buffering: the <c>file</c> part streams straight into
/// <c>{staging}/model.onnx</c> (on the store's file system, so publishing is a rename).
/// </summary>
public static class ModelUploadReader
{
    private const int MaxFieldBytes = 1024 * 1024;

    /// <summary>The block a model file is read, hashed and written in.</summary>
    private const int Block = 256 * 1024;

    /// <summary>Reads the form, the model into <paramref name="staging"/> (which its caller owns and cleans up).</summary>
    public static async Task<ModelUpload> ReadAsync(HttpRequest request, string staging, long maxModelBytes, CancellationToken cancellationToken)
    {
        // The form holds the model and a few small fields: the model's limit and a field's worth of slack.
        RequestBodyLimit.Apply(request, maxModelBytes + MaxFieldBytes);
        var parts = MultipartParts.Of(request, "Upload the model as multipart/form-data with a 'file' part.", Block);
        string? fileName = null, name = null, manifest = null, sha256 = null;
        while (await parts.NextAsync(cancellationToken) is { } part)
        {
            switch (part.Name)
            {
                case "file":
                    if (sha256 is not null) throw ProblemException.BadRequest("Send exactly one 'file' part.");
                    fileName = part.FileName;
                    sha256 = await CopyLimitedAsync(part.Body, Path.Combine(staging, StoreLayout.ModelFile), maxModelBytes, cancellationToken);
                    break;
                case "name":
                    name = (await ReadFieldAsync(part.Body, cancellationToken)).Trim();
                    break;
                case "manifest":
                    manifest = await ReadFieldAsync(part.Body, cancellationToken);
                    break;
                // Any other part is skipped: the reader drains it on the way to the next.
            }
        }
        if (sha256 is null) throw ProblemException.BadRequest("The 'file' part (the .onnx model) is missing.");
        return new ModelUpload(fileName, string.IsNullOrEmpty(name) ? null : name, manifest, sha256);
    }

    // Disk errors while writing the staged file are not the client's and stay server errors.
    private static Task<int> ReadBodyAsync(Stream body, byte[] buffer, CancellationToken cancellationToken) =>
        MultipartParts.ClientRead(() => body.ReadAsync(buffer, cancellationToken).AsTask(), cancellationToken);

    /// <returns>The file's SHA-256 (lower-case hex), computed on the way: the store's version needs no second read.</returns>
    private static async Task<string> CopyLimitedAsync(Stream source, string path, long maxBytes, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // Unbuffered: each block goes to the file as it is read.
        await using var target = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0, useAsync: true);
        var buffer = new byte[Block];
        long total = 0;
        int read;
        while ((read = await ReadBodyAsync(source, buffer, cancellationToken)) > 0)
        {
            total += read;
            if (total > maxBytes) throw ProblemException.TooLarge($"The model exceeds the {maxBytes}-byte limit.");
            hash.AppendData(buffer, 0, read);
            await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
        if (total == 0) throw ProblemException.Unprocessable("The model file is empty.");
        await target.FlushAsync(cancellationToken); // to the system; to the disk while it is checked (ModelStore.StageAsync)
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static async Task<string> ReadFieldAsync(Stream body, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await ReadBodyAsync(body, chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > MaxFieldBytes) throw ProblemException.TooLarge($"A form field exceeds {MaxFieldBytes} bytes.");
            buffer.Write(chunk, 0, read);
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
