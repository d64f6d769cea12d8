using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace SaliencyService.Tests.Support;

/// <summary>
/// The whole service in memory, on its own temporary model store (deleted on dispose unless the
/// caller owns it). Demo seeding is off unless a test asks for it.
/// </summary>
public sealed class ServiceFactory : WebApplicationFactory<Program>
{
    private readonly bool _ownsStore;
    private readonly Dictionary<string, string?> _settings;

    public ServiceFactory(string? store = null, Dictionary<string, string?>? settings = null)
    {
        _ownsStore = store is null;
        Store = store ?? NewStoreDirectory();
        _settings = new Dictionary<string, string?>
        {
            ["Saliency:ModelStore"] = Store,
            ["Saliency:SeedDemoModels"] = "false",
            ["Saliency:RateLimit:PermitsPerSecond"] = "0", // tests fire bursts; RateLimitTests turn it on
            // Spares fault no heap in for the next import: an import's speed is the bench's, and a test
            // process starts hundreds of spares (a real service process keeps the default).
            ["Saliency:Explain:SpareHeapMegabytes"] = "0",
            // Nor wait for a spare's warm-up to start: a test's first import waits for it if it must.
            ["Saliency:Explain:WarmSpareBeforeReady"] = "false",
        };
        foreach (var (key, value) in settings ?? []) _settings[key] = value;
    }

    public string Store { get; }

    public static string NewStoreDirectory() =>
        Path.Combine(Path.GetTempPath(), "saliency-tests", Guid.NewGuid().ToString("N"));

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings) builder.UseSetting(key, value);
        builder.UseEnvironment("Testing");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && _ownsStore) DeleteServiceFolder(Store);
    }

    /// <summary>
    /// Deletes a folder that a service used: its store, or its temp folder. The app's own host is
    /// disposed on its entry point's thread, which may still be removing its staging folder (and
    /// waiting for a model's backward still building) while this deletes the store: a folder gone
    /// meanwhile is fine, and the delete is tried again until nothing is left.
    /// </summary>
    public static void DeleteServiceFolder(string folder)
    {
        for (var attempt = 1; Directory.Exists(folder); attempt++)
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException) when (attempt < 20)
            {
                Thread.Sleep(100);
            }
        }
    }
}
