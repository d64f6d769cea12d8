using System.Text.Json;
using SaliencyService.Explain.Engine;

namespace SaliencyService.Api.Models;

/// <summary>
/// Writes a JSON file into a staging folder. The caller flushes it to disk before the folder's
/// publish rename makes it visible (so no replica can see the folder without it), while other work
/// goes on: <see cref="ModelStore.StageAsync"/>.
/// </summary>
public static class StagedJson
{
    public static async Task WriteAsync<T>(string path, T value, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        await JsonSerializer.SerializeAsync(file, value, ModelInspection.Json, cancellationToken);
        await file.FlushAsync(cancellationToken);
    }
}
