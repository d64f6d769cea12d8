using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>A fresh start with no configuration serves the bundled demo models.</summary>
public sealed class DemoModelsTests : IDisposable
{
    private readonly ServiceFactory _factory = new(settings: new() { ["Saliency:SeedDemoModels"] = "true" });

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task An_empty_store_is_seeded_with_the_demo_models_that_predict_correctly()
    {
        using var client = _factory.CreateClient();
        var models = await Http.ReadAsync<ModelDescriptor[]>(await client.GetAsync("/v1/models"));
        Assert.Equal(["resnet18", "seed-cnn"], models.Select(m => m.Name));

        var resnet = models[0];
        Assert.Equal("CNTK", resnet.Producer);
        // The CNTK export (opset 8, asymmetric pads) is explainable, its mirror within 1e-3 relative.
        Assert.True(resnet.Explain.Supported, resnet.Explain.Reason);
        Assert.InRange(resnet.Explain.ParityMaxAbsDiff!.Value, 0, 1e-3 * 10);
        Assert.Equal("ReLU393_Output_0", resnet.Explain.DefaultLayer); // the last 4-D rectifier, 512×7×7
        Assert.Equal([1L, 512, 7, 7], resnet.Explain.Layers.Single(l => l.Name == resnet.Explain.DefaultLayer).Shape);
        Assert.Equal([1L, 3, 224, 224], resnet.Inputs[0].Shape);
        Assert.Equal(("BGR", 1.0), (resnet.Preprocessing.Channels, resnet.Preprocessing.Scale));

        using (var square = Http.ImageForm(Path.Combine(TestPaths.Samples, "square.png")))
            Assert.Equal("square", (await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/seed-cnn/predict", square))).Predictions[0].Top[0].Label);
        using (var circle = Http.ImageForm(Path.Combine(TestPaths.Samples, "circle.png")))
            Assert.Equal("circle", (await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/seed-cnn/predict", circle))).Predictions[0].Top[0].Label);

        // ResNet18's batch dimension is fixed at 1: two photos run as two batches of one.
        using var photos = Http.ImageForm(Path.Combine(TestPaths.Samples, "rocket.jpg"), Path.Combine(TestPaths.Samples, "chelsea.png"));
        var features = await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/resnet18/predict?topK=512", photos));
        Assert.Equal(2, features.Predictions.Count);
        Assert.All(features.Predictions, p => Assert.Equal(512, p.Top.Count));
        Assert.All(features.Predictions, p => Assert.All(p.Top, s => Assert.True(s.Score >= 0))); // pooled ReLU features
        Assert.NotEqual(features.Predictions[0].Top[0].Index, features.Predictions[1].Top[0].Index);

        // Guided backprop of a real photo: non-trivial and concentrated on the cat, not the borders.
        using var cat = Http.ImageForm(Path.Combine(TestPaths.Samples, "chelsea.png"));
        var response = await client.PostAsync("/v1/models/resnet18/explain?format=npy", cat);
        var map = Explain.Tensors.Npy.Read(await Http.ReadBytesAsync(response), long.MaxValue);
        Assert.Equal([3L, 224, 224], map.Shape);
        Assert.True(map.Data.Count(v => v != 0) > map.Data.Length / 4);
        Assert.All(map.Data, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public async Task The_demos_are_not_seeded_again_once_their_owner_deleted_them()
    {
        using (var client = _factory.CreateClient())
        {
            await client.DeleteAsync("/v1/models/resnet18");
            await client.DeleteAsync("/v1/models/seed-cnn");
        }
        using var restarted = new ServiceFactory(_factory.Store, new() { ["Saliency:SeedDemoModels"] = "true" });
        using var again = restarted.CreateClient();
        Assert.Empty(await Http.ReadAsync<ModelDescriptor[]>(await again.GetAsync("/v1/models")));
    }
}
