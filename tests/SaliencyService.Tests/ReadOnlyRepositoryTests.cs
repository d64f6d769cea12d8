using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Grpc.Health.V1;
using Grpc.Net.Client;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A read-only model repository given at start, as KServe's storage initializer leaves one under
/// /mnt/models: a folder of models, or one bare model.onnx with its model.json. Served as given,
/// never written; imports and deletes are a 403.
/// </summary>
public sealed class ReadOnlyRepositoryTests : IDisposable
{
    private readonly string _root = ServiceFactory.NewStoreDirectory();

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task A_bare_model_is_served_under_the_configured_name_and_nothing_is_written()
    {
        Directory.CreateDirectory(_root);
        File.Copy(TestPaths.Fixture("seed_cnn", "model.onnx"), Path.Combine(_root, "model.onnx"));
        File.Copy(TestPaths.Fixture("seed_cnn", "model.json"), Path.Combine(_root, "model.json"));
        var before = Snapshot();

        using var factory = ReadOnly("flowers");
        using var client = factory.CreateClient();
        var models = (await client.GetFromJsonAsync<ModelDescriptor[]>("/v1/models", Http.Json))!;
        Assert.Equal(["flowers"], models.Select(m => m.Name));
        Assert.True(models[0].Explain.Supported, models[0].Explain.Reason ?? "");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/models/flowers/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/ready")).StatusCode);

        // It predicts and explains like an imported model: PyTorch's outputs for the fixture input.
        var c = ReferenceCases.All.First(r => r.Model == "seed_cnn");
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", c.Stem + ".tensor.npy")));
        var prediction = await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/flowers/predict?topK=1", form));
        Assert.Equal(c.Target, prediction.Predictions[0].Top[0].Index);

        await AssertRefusedAsync(client);
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public async Task A_folder_of_models_is_served_and_refuses_changes()
    {
        foreach (var fixture in new[] { "seed_cnn", "mini_resnet" })
        {
            var folder = Directory.CreateDirectory(Path.Combine(_root, fixture.Replace('_', '-'))).FullName;
            File.Copy(TestPaths.Fixture(fixture, "model.onnx"), Path.Combine(folder, "model.onnx"));
            File.Copy(TestPaths.Fixture(fixture, "model.json"), Path.Combine(folder, "model.json"));
        }
        var before = Snapshot();

        using var factory = ReadOnly("ignored-when-not-bare");
        using var client = factory.CreateClient();
        var models = (await client.GetFromJsonAsync<ModelDescriptor[]>("/v1/models", Http.Json))!;
        Assert.Equal(["mini-resnet", "seed-cnn"], models.Select(m => m.Name));
        await AssertRefusedAsync(client, "seed-cnn");
        Assert.Equal(before, Snapshot());
    }

    /// <summary>
    /// A repository on a file system mounted read-only, without the setting: served as given, as
    /// Triton serves one, where the service used to stop at start ("Read-only file system" creating
    /// its staging folder). A real read-only mount, in a mount namespace of the service's own.
    /// </summary>
    [Fact]
    public async Task A_repository_mounted_read_only_is_served_without_the_setting()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_root, "seed-cnn")).FullName;
        File.Copy(TestPaths.Fixture("seed_cnn", "model.onnx"), Path.Combine(folder, "model.onnx"));
        File.Copy(TestPaths.Fixture("seed_cnn", "model.json"), Path.Combine(folder, "model.json"));

        using var service = await ServiceProcess.StartAsync(_root, launcher: Launchers.ReadOnlyMount(_root));
        Assert.False(service.HasExited, service.Output);
        Assert.Contains("read-only (its file system is mounted read-only)", service.Output);
        var c = ReferenceCases.All.First(r => r.Model == "seed_cnn");
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", c.Stem + ".tensor.npy")));
        var prediction = await Http.ReadAsync<PredictResponse>(await service.Client.PostAsync("/v1/models/seed-cnn/predict?topK=1", form));
        Assert.Equal(c.Target, prediction.Predictions[0].Top[0].Index);
        using var upload = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), "another");
        Assert.Contains("mounted read-only", await Http.AssertProblemAsync(await service.Client.PostAsync("/v1/models", upload), HttpStatusCode.Forbidden));
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/health/ready")).StatusCode);
    }

    [Fact]
    public async Task A_bare_model_that_cannot_load_makes_the_replica_unready()
    {
        Directory.CreateDirectory(_root);
        await File.WriteAllTextAsync(Path.Combine(_root, "model.onnx"), "not a model");
        using var factory = ReadOnly("broken");
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);

        using var channel = GrpcChannel.ForAddress("http://localhost:5081", new GrpcChannelOptions { HttpHandler = factory.Server.CreateHandler() });
        var health = new Health.HealthClient(channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing,
            (await health.CheckAsync(new HealthCheckRequest { Service = "inference.GRPCInferenceService" })).Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = "live" })).Status);
    }

    private ServiceFactory ReadOnly(string modelName) => new(_root, new Dictionary<string, string?>
    {
        ["Saliency:ModelStore:ReadOnly"] = "true",
        ["Saliency:ModelStore:ModelName"] = modelName,
        ["Saliency:SeedDemoModels"] = "true", // a read-only store is never seeded
    });

    private static async Task AssertRefusedAsync(HttpClient client, string existing = "flowers")
    {
        using var upload = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), "another");
        var import = await Http.AssertProblemAsync(await client.PostAsync("/v1/models", upload), HttpStatusCode.Forbidden);
        Assert.Contains("read-only", import);
        await Http.AssertProblemAsync(await client.DeleteAsync($"/v1/models/{existing}"), HttpStatusCode.Forbidden);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/v1/models/{existing}")).StatusCode);
    }

    /// <summary>Every file under the root with its size and time.</summary>
    private string Snapshot() => string.Join('\n', Directory.EnumerateFileSystemEntries(_root, "*", SearchOption.AllDirectories).Order()
        .Select(p => $"{p} {(File.Exists(p) ? new FileInfo(p).Length : -1)} {File.GetLastWriteTimeUtc(p):O}"));
}
