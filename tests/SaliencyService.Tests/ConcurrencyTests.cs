using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Replacing or deleting a model never fails the requests already using it.</summary>
public sealed class ConcurrencyTests : IDisposable
{
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Predictions_running_across_replaces_all_succeed_with_one_version_or_the_other()
    {
        using var client = _factory.CreateClient();
        await Http.ImportFixtureAsync(client, "mini_resnet", "swapped");
        var tensor = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy"));
        // mini_resnet's reference scores for this input are known; mini_mobilenet gives others.
        var resnet = ReferenceCases.Get("mini_resnet", "input0").Outputs;

        using var stop = new CancellationTokenSource();
        var replaces = 0;
        var replacer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested || Volatile.Read(ref replaces) < 6)
            {
                await Http.ImportFixtureAsync(client, Volatile.Read(ref replaces) % 2 == 0 ? "mini_mobilenet" : "mini_resnet", "swapped", replace: true);
                Interlocked.Increment(ref replaces);
            }
        });

        // Predictions run until several replaces have landed, so both versions answer some of them.
        var predictors = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            var seen = new List<float[]>();
            for (var i = 0; i < 40 || Volatile.Read(ref replaces) < 4; i++)
            {
                using var form = Http.TensorForm(tensor);
                var response = await client.PostAsync("/v1/models/swapped/predict?topK=10", form);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var top = (await Http.ReadAsync<PredictResponse>(response)).Predictions[0].Top;
                seen.Add(top.OrderBy(s => s.Index).Select(s => s.Score).ToArray());
            }
            return seen;
        })).ToArray();

        var results = (await Task.WhenAll(predictors)).SelectMany(r => r).ToList();
        stop.Cancel();
        await replacer;
        Assert.True(replaces >= 6);

        // Each answer is wholly one version's: mini_resnet's reference scores, or mini_mobilenet's;
        // and both versions answered (the test saw replaces happen under it).
        var mobilenetSeen = results.Where(r => !Close(r, resnet)).ToList();
        Assert.NotEmpty(mobilenetSeen);
        Assert.Contains(results, r => Close(r, resnet));
        Assert.All(mobilenetSeen, r => Assert.True(Close(r, mobilenetSeen[0]), "a response mixed two versions"));
    }

    [Fact]
    public async Task A_lease_keeps_a_deleted_model_usable_until_released()
    {
        using var client = _factory.CreateClient();
        await Http.ImportFixtureAsync(client, "seed_cnn", "leased");
        var store = (SaliencyService.Api.Models.ModelStore)_factory.Services.GetService(typeof(SaliencyService.Api.Models.ModelStore))!;

        using var lease = store.Lease("leased");
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/v1/models/leased")).StatusCode);
        await Http.AssertProblemAsync(await client.GetAsync("/v1/models/leased"), HttpStatusCode.NotFound);

        // The request holding the lease still runs on the deleted version.
        var input = SaliencyService.Explain.Tensors.Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), long.MaxValue);
        var output = lease.Model.Onnx.Run("image_input", input, "output");
        Assert.Equal(ReferenceCases.Get("seed_cnn", "input0").Outputs[0], output.Data[0], 4);
    }

    [Fact]
    public async Task Concurrent_explains_and_predicts_all_give_the_reference_answers()
    {
        using var client = _factory.CreateClient();
        await Http.ImportFixtureAsync(client, "mini_mobilenet");
        var tensor = File.ReadAllBytes(TestPaths.Fixture("mini_mobilenet", "input1.tensor.npy"));
        var reference = SaliencyService.Explain.Tensors.Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_mobilenet", "input1.guided_backprop.npy")), long.MaxValue);
        var scale = reference.Data.Max(Math.Abs);

        var explains = Enumerable.Range(0, 12).Select(async _ =>
        {
            using var form = Http.TensorForm(tensor);
            var map = SaliencyService.Explain.Tensors.Npy.Read(
                await Http.ReadBytesAsync(await client.PostAsync("/v1/models/mini_mobilenet/explain?format=npy", form)), long.MaxValue);
            Assert.True(reference.Data.Zip(map.Data, (r, m) => Math.Abs(r - m)).Max() <= 1e-3 * scale);
        });
        var predicts = Enumerable.Range(0, 12).Select(async _ =>
        {
            using var form = Http.TensorForm(tensor);
            var top = (await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/mini_mobilenet/predict", form))).Predictions[0].Top;
            Assert.Equal(ReferenceCases.Get("mini_mobilenet", "input1").Target, top[0].Index);
        });
        await Task.WhenAll(explains.Concat(predicts));
    }

    private static bool Close(float[] a, float[] b) => a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= 1e-4f);
}
