using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Models;

/// <summary>
/// Loads the store (and seeds the demos) before the server starts listening, so every request
/// sees a loaded store and <c>/health/ready</c> is honest; then waits for the import check's spare
/// child to warm up, after the service's own side of an import has run once where none ran at this
/// start (<see cref="ImportWarmUp"/>; both <see cref="Explain.Engine.ExplainOptions.WarmSpareBeforeReady"/>).
/// </summary>
public sealed class ModelStoreStartup(
    ModelStore store, DemoModelSeeder seeder, ImportWarmUp importWarmUp, OnnxSessionFactory sessions, ExplainAnalysis explain,
    Microsoft.Extensions.Options.IOptions<Configuration.SaliencyOptions> options, ILogger<ModelStoreStartup> logger,
    Configuration.ConnectionSlots? connections = null)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(options.Value.ApiKey))
            logger.LogWarning("Saliency:ApiKey is not set: anyone who reaches this service can import and delete models");
        if (connections is not null)
            logger.LogInformation("Connections: at most {Connections} open at once (Saliency:MaxConnections)", connections.Slots);
        var (provider, reason) = sessions.PreferredProvider;
        logger.LogInformation("ONNX Runtime: {Provider} ({Reason}); {Threads} intra-op thread(s) per run", provider, reason, sessions.IntraOpThreads);
        var (loaded, status) = explain.Engine;
        if (loaded) logger.LogInformation("Explain engine: {Status}", status);
        else logger.LogWarning("Explain engine unavailable, models will predict but not explain: {Status}", status);
        logger.LogInformation("Model store: {Root}", store.Layout.Root);
        // Before the demos' seeding, whose imports start spares too: the one they leave serves the first import.
        Explain.Isolation.ChildProcess.SpareHeapMegabytes = explain.Options.SpareHeapMegabytes;
        store.Load();
        await seeder.SeedIfEmptyAsync(cancellationToken);
        logger.LogInformation("Serving {Count} model(s)", store.List().Count);
        if (!loaded || store.Layout.ReadOnly) return;
        // The demos' seeding, where it ran, has compiled the service's side of an import already.
        if (explain.Options.IsolateImports && explain.Options.WarmSpareBeforeReady && store.ImportsBegun == 0)
            await Task.Run(() => importWarmUp.RunAsync(cancellationToken), cancellationToken);
        // The first import's isolated check then finds its child started, libraries loaded.
        if (explain.Options.IsolateImports) Explain.Isolation.ChildProcess.StartSpare();
        // And the service's own share of that import (its session, mirror and backward) finds resident pages;
        // the reserve stops once an import begins.
        var seeded = store.ImportsBegun;
        Explain.Torch.NativeHeap.ReserveInBackground((long)explain.Options.SpareHeapMegabytes << 20, () => store.ImportsBegun > seeded);
        if (explain.Options.IsolateImports && explain.Options.WarmSpareBeforeReady) await WaitForSpareAsync(cancellationToken);
    }

    /// <summary>Before listening (and so before readiness): the first import's check then finds a warm child.</summary>
    private async Task WaitForSpareAsync(CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            await Explain.Isolation.ChildProcess.SpareWarmedUp().WaitAsync(SpareWarmUpLimit, cancellationToken);
            logger.LogInformation("Import check child warmed up in {Seconds:0.0} s", System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        catch (TimeoutException)
        {
            logger.LogWarning("The import check child did not warm up within {Seconds} s; serving without waiting for it", SpareWarmUpLimit.TotalSeconds);
        }
    }

    /// <summary>A warm-up takes 2–4 s on two cores; a host so loaded that it takes longer serves meanwhile.</summary>
    private static readonly TimeSpan SpareWarmUpLimit = TimeSpan.FromSeconds(30);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
