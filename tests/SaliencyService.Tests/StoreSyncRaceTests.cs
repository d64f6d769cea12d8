using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using SaliencyService.Api.Models;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A replica's sync pass that loads a folder while another replica replaces it: the load fails
/// (its files vanish between the replace's two renames), and that is a change to take on the next
/// pass, not a broken model. Remembered as a failure, it answered 503 "failed to load on this
/// replica" until the next version loaded (found by two replicas under import, replace and delete
/// churn). The other replica here is the test, replacing the folder on a slow volume.
/// </summary>
public sealed class StoreSyncRaceTests : IDisposable
{
    private readonly string _store = ServiceFactory.NewStoreDirectory();

    public void Dispose()
    {
        ServiceFactory.DeleteServiceFolder(_store);
    }

    [Fact]
    public async Task A_folder_replaced_while_it_loads_is_taken_on_the_next_pass_not_failed()
    {
        using var factory = new ServiceFactory(_store, new() { ["Saliency:ModelStore:PollSeconds"] = "0" }); // passes run here only
        using (var client = factory.CreateClient())
            await Http.ImportFixtureAsync(client, "mini_resnet", "churn");
        var store = factory.Services.GetRequiredService<ModelStore>();
        var folder = Path.Combine(_store, "churn");
        var template = Path.Combine(_store, ".staging", "template");
        CopyFolder(folder, template);

        using var stop = new CancellationTokenSource();
        var replaces = 0;
        var churn = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var staged = Path.Combine(_store, ".staging", Guid.NewGuid().ToString("N"));
                CopyFolder(template, staged);
                var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(staged, "model.json")))!;
                manifest["generation"] = Guid.NewGuid().ToString("N"); // a new version of the same file, as a replace writes it
                File.WriteAllText(Path.Combine(staged, "model.json"), manifest.ToJsonString());
                var old = Path.Combine(_store, ".trash", Guid.NewGuid().ToString("N"));
                Directory.Move(folder, old);
                await Task.Delay(3); // a slow shared volume: the name is absent a while between the renames
                Directory.Move(staged, folder);
                Directory.Delete(old, recursive: true);
                Interlocked.Increment(ref replaces);
                await Task.Delay(3);
            }
        });

        try
        {
            while (Volatile.Read(ref replaces) < 50 && !churn.IsCompleted)
            {
                await store.SyncAsync();
                Assert.Empty(store.Failed);
            }
        }
        finally
        {
            stop.Cancel();
            await churn;
        }

        await store.SyncAsync(); // the last version, now left alone
        Assert.Empty(store.Failed);
        Assert.Equal(ModelVersion.Read(folder)!.Sha256, store.Get("churn").Sha256);
        using var lease = store.Lease("churn");
        Assert.Equal(ModelVersion.Read(folder), lease.Model.Version);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }
}
