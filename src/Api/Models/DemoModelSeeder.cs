using SaliencyService.Api.Errors;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Explain;

namespace SaliencyService.Api.Models;

/// <summary>
/// Seeds an empty store, once, with the demo models shipped in <c>DemoModels/{name}/</c> beside
/// the service, through the same validated import as an upload. A <c>.seeded</c> marker keeps a
/// store whose owner deleted the demos from being seeded again.
/// </summary>
public sealed class DemoModelSeeder(ModelStore store, IOptions<SaliencyOptions> options, ILogger<DemoModelSeeder> logger)
{
    public static string DemoDirectory => Path.Combine(AppContext.BaseDirectory, "DemoModels");

    public async Task SeedIfEmptyAsync(CancellationToken cancellationToken)
    {
        var marker = Path.Combine(store.Layout.Root, ".seeded");
        if (!options.Value.SeedDemoModels || store.Layout.ReadOnly || File.Exists(marker) || !store.IsEmpty || !Directory.Exists(DemoDirectory)) return;

        foreach (var demo in Directory.EnumerateDirectories(DemoDirectory).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(demo);
            var source = Path.Combine(demo, StoreLayout.ModelFile);
            if (!File.Exists(source))
            {
                logger.LogWarning("Demo model {Model} has no {File}; skipped", name, StoreLayout.ModelFile);
                continue;
            }
            try
            {
                await store.Layout.WithStagingAsync(async staging =>
                {
                    File.Copy(source, Path.Combine(staging, StoreLayout.ModelFile));
                    var manifestPath = Path.Combine(demo, StoreLayout.ManifestFile);
                    var manifest = File.Exists(manifestPath) ? await File.ReadAllTextAsync(manifestPath, cancellationToken) : null;
                    return await store.ImportAsync(staging, name, manifest, replace: false, cancellationToken);
                });
            }
            catch (ProblemException e) when (e.StatusCode == StatusCodes.Status409Conflict)
            {
                logger.LogInformation("Demo model {Model} is in the store already (another replica seeded it)", name);
            }
        }
        await File.WriteAllTextAsync(marker, DateTimeOffset.UtcNow.ToString("O"), cancellationToken);
    }
}
