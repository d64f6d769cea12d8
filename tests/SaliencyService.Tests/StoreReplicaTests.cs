using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Two real service processes on one store folder, as replicas on a ReadWriteMany volume: every
/// import, replace and delete on one reaches the other, a replace under load fails no request,
/// and a replica that dies mid-import leaves nothing the other can see. Waits are bounded polls;
/// propagation time is measured in the issue's note, not asserted.
/// </summary>
public sealed class StoreReplicaTests : IAsyncLifetime
{
    // Polls every half second; no rate limit, as the load and the polls come from one address.
    private static readonly Dictionary<string, string> FastPoll = new()
    {
        ["Saliency__ModelStore__PollSeconds"] = "0.5",
        ["Saliency__RateLimit__PermitsPerSecond"] = "0",
    };
    private readonly string _store = ServiceFactory.NewStoreDirectory();
    private ServiceProcess _a = null!;
    private ServiceProcess _b = null!;

    public async Task InitializeAsync()
    {
        _a = await ServiceProcess.StartAsync(_store, FastPoll);
        _b = await ServiceProcess.StartAsync(_store, FastPoll);
    }

    public Task DisposeAsync()
    {
        _a.Dispose();
        _b.Dispose();
        ServiceFactory.DeleteServiceFolder(_store);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task An_import_on_one_replica_is_served_by_the_other_both_ways()
    {
        var imported = await Http.ImportFixtureAsync(_a.Client, "mini_resnet", "shared");
        var seen = await EventuallyAsync(_b.Client, "shared", d => d?.Sha256 == imported.Sha256);
        Assert.Equal(imported.Sha256, seen.Sha256);
        using var form = Http.ImageForm(TestPaths.Fixture("mini_resnet", "input1.png"));
        var prediction = await Http.ReadAsync<PredictResponse>(await _b.Client.PostAsync("/v1/models/shared/predict", form));
        Assert.Equal(ReferenceCases.Get("mini_resnet", "input1").Target, prediction.Predictions[0].Top[0].Index);

        var back = await Http.ImportFixtureAsync(_b.Client, "mini_mobilenet", "from-b");
        Assert.Equal(back.Sha256, (await EventuallyAsync(_a.Client, "from-b", d => d is not null)).Sha256);

        // The name is taken on both: the second import of it is a conflict wherever it is sent.
        using var again = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), "shared");
        await Http.AssertProblemAsync(await _b.Client.PostAsync("/v1/models", again), HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task A_replace_on_one_replica_switches_the_other_without_a_failed_request()
    {
        var first = await Http.ImportFixtureAsync(_a.Client, "mini_resnet", "model");
        await EventuallyAsync(_b.Client, "model", d => d?.Sha256 == first.Sha256);

        using var load = new CancellationTokenSource();
        var statuses = new List<HttpStatusCode>();
        var clients = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!load.IsCancellationRequested)
            {
                using var form = Http.ImageForm(TestPaths.Fixture("mini_resnet", "input0.png"));
                var response = await _b.Client.PostAsync("/v1/models/model/predict", form);
                lock (statuses) statuses.Add(response.StatusCode);
            }
        })).ToArray();

        var second = await Http.ImportFixtureAsync(_a.Client, "mini_mobilenet", "model", replace: true);
        Assert.NotEqual(first.Sha256, second.Sha256);
        await EventuallyAsync(_b.Client, "model", d => d?.Sha256 == second.Sha256);
        await Task.Delay(500); // requests on the new version too
        load.Cancel();
        await Task.WhenAll(clients);

        Assert.True(statuses.Count > 10, $"only {statuses.Count} requests ran during the replace");
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task A_delete_on_one_replica_reaches_the_other()
    {
        await Http.ImportFixtureAsync(_a.Client, "seed_cnn", "doomed");
        await EventuallyAsync(_b.Client, "doomed", d => d is not null);
        Assert.Equal(HttpStatusCode.NoContent, (await _a.Client.DeleteAsync("/v1/models/doomed")).StatusCode);
        await EventuallyAsync(_b.Client, "doomed", d => d is null);
        Assert.Equal(HttpStatusCode.NotFound, (await _b.Client.GetAsync("/v1/models/doomed")).StatusCode);
        var metrics = await _b.Client.GetStringAsync("/metrics");
        Assert.Contains("saliency_store_sync_events_total{kind=\"import\"} 1", metrics);
        Assert.Contains("saliency_store_sync_events_total{kind=\"delete\"} 1", metrics);
    }

    [Fact]
    public async Task A_replica_that_dies_mid_import_leaves_nothing_the_other_sees()
    {
        await Http.ImportFixtureAsync(_b.Client, "seed_cnn", "existing");
        var stall = new StallingUpload(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx")));
        var upload = _a.Client.PostAsync("/v1/models", stall);
        for (var i = 0; i < 600 && !StagedUploads.In(_store).Any(); i++) await Task.Delay(50);
        Assert.NotEmpty(StagedUploads.In(_store));
        _a.Kill();
        stall.Release();
        await Assert.ThrowsAnyAsync<Exception>(() => upload);

        await Task.Delay(2000); // four polls of B's
        var models = await Http.ReadAsync<ModelDescriptor[]>(await _b.Client.GetAsync("/v1/models"));
        Assert.Equal(["existing"], models.Select(m => m.Name));
        Assert.Equal(HttpStatusCode.NotFound, (await _b.Client.GetAsync("/v1/models/half")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _b.Client.GetAsync("/health/ready")).StatusCode);

        // The dead replica's upload is cleaned up by the next replica that starts, not by B meanwhile.
        using var restarted = await ServiceProcess.StartAsync(_store, FastPoll);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_store, ".staging"), "model.onnx", SearchOption.AllDirectories));
    }

    /// <summary>Polls a replica's descriptor of <paramref name="name"/> (null: 404) until the condition holds, for at most 30 s.</summary>
    private static async Task<ModelDescriptor> EventuallyAsync(HttpClient client, string name, Func<ModelDescriptor?, bool> condition)
    {
        ModelDescriptor? last = null;
        for (var attempt = 0; attempt < 300; attempt++)
        {
            var response = await client.GetAsync($"/v1/models/{name}");
            last = response.StatusCode == HttpStatusCode.NotFound ? null : await Http.ReadAsync<ModelDescriptor>(response);
            if (condition(last)) return last!;
            await Task.Delay(100);
        }
        Assert.Fail($"'{name}' never reached the expected state; last seen: {last?.Sha256 ?? "404"}");
        return null!;
    }
}
