using System.Net;
using System.Net.Http.Headers;
using System.Text;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>What survives a restart, a killed upload, and a crash in the middle of a change.</summary>
public sealed class StoreDurabilityTests : IDisposable
{
    private readonly string _store = ServiceFactory.NewStoreDirectory();

    public void Dispose()
    {
        ServiceFactory.DeleteServiceFolder(_store);
    }

    [Fact]
    public async Task Imported_models_are_served_after_a_restart()
    {
        ModelDescriptor imported;
        using (var first = new ServiceFactory(_store))
        using (var client = first.CreateClient())
            imported = await Http.ImportFixtureAsync(client, "mini_resnet", "kept");

        using var second = new ServiceFactory(_store);
        using var again = second.CreateClient();
        var described = await Http.ReadAsync<ModelDescriptor>(await again.GetAsync("/v1/models/kept"));
        Assert.Equal(imported.Sha256, described.Sha256);
        Assert.Equal(imported.Preprocessing.Mean, described.Preprocessing.Mean);
        Assert.Equal(imported.Labels, described.Labels);

        using var form = Http.ImageForm(TestPaths.Fixture("mini_resnet", "input1.png"));
        var prediction = await Http.ReadAsync<PredictResponse>(await again.PostAsync("/v1/models/kept/predict", form));
        Assert.Equal(ReferenceCases.Get("mini_resnet", "input1").Target, prediction.Predictions[0].Top[0].Index);
    }

    [Fact]
    public async Task A_process_killed_during_an_upload_leaves_nothing_behind()
    {
        using (var service = await ServiceProcess.StartAsync(_store))
        {
            await Http.ImportFixtureAsync(service.Client, "seed_cnn", "existing");
            var stall = new StallingUpload(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx")));
            var upload = service.Client.PostAsync("/v1/models", stall);
            await WaitForAsync(() => Directory.EnumerateFiles(Path.Combine(_store, ".staging"), "model.onnx", SearchOption.AllDirectories)
                .Any(f => new FileInfo(f).Length > 0));
            service.Kill();
            stall.Release();
            await Assert.ThrowsAnyAsync<Exception>(() => upload);
        }

        using var restarted = await ServiceProcess.StartAsync(_store);
        var models = await Http.ReadAsync<ModelDescriptor[]>(await restarted.Client.GetAsync("/v1/models"));
        Assert.Equal(["existing"], models.Select(m => m.Name));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_store, ".staging")));
        Assert.Equal([".staging", ".trash", "existing"], Directory.EnumerateDirectories(_store).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task A_replace_interrupted_between_its_renames_gets_the_old_version_back()
    {
        // The state a crash leaves between "old version to trash" and "new version into place".
        var trashed = Path.Combine(_store, ".trash", "victim.0123456789abcdef.replaced");
        Directory.CreateDirectory(trashed);
        File.Copy(TestPaths.Fixture("seed_cnn", "model.onnx"), Path.Combine(trashed, "model.onnx"));
        File.Copy(TestPaths.Fixture("seed_cnn", "model.json"), Path.Combine(trashed, "model.json"));
        // A delete interrupted before its trash was emptied stays deleted.
        var deleted = Path.Combine(_store, ".trash", "gone.0123456789abcdef.deleted");
        Directory.CreateDirectory(deleted);
        File.Copy(TestPaths.Fixture("seed_cnn", "model.onnx"), Path.Combine(deleted, "model.onnx"));

        using var factory = new ServiceFactory(_store);
        using var client = factory.CreateClient();
        var models = await Http.ReadAsync<ModelDescriptor[]>(await client.GetAsync("/v1/models"));
        Assert.Equal(["victim"], models.Select(m => m.Name));
        Assert.Equal(["square", "circle"], models[0].Labels);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_store, ".trash")));
    }

    [Fact]
    public async Task A_broken_model_folder_is_skipped_and_the_rest_is_served()
    {
        Directory.CreateDirectory(Path.Combine(_store, "broken"));
        File.WriteAllText(Path.Combine(_store, "broken", "model.onnx"), "garbage");
        Directory.CreateDirectory(Path.Combine(_store, "fine"));
        File.Copy(TestPaths.Fixture("mini_mobilenet", "model.onnx"), Path.Combine(_store, "fine", "model.onnx"));

        using var factory = new ServiceFactory(_store);
        using var client = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        var models = await Http.ReadAsync<ModelDescriptor[]>(await client.GetAsync("/v1/models"));
        Assert.Equal(["fine"], models.Select(m => m.Name));
        // A folder dropped in by hand without a manifest gets the contract's defaults.
        Assert.Equal(("NCHW", 32, "RGB"), (models[0].Preprocessing.Layout, models[0].Preprocessing.Width, models[0].Preprocessing.Channels));
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (var i = 0; i < 600 && !condition(); i++) await Task.Delay(50);
        Assert.True(condition(), "the condition never became true");
    }
}
