using System.Net;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Api.Models;
using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A model whose session ONNX Runtime's full graph optimizations crash (1.31 on float16 attention,
/// on this repository's hosts) is checked again at the layout level and served there; the level
/// is kept with the import's verdict, so later start-ups and other replicas load it the same way.
/// </summary>
public sealed class GraphOptimizationFallbackTests : IDisposable
{
    private const string Folder = "float16_attention";
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task A_float16_transformer_imports_predicts_and_explains_as_float64_does()
    {
        using var client = _factory.CreateClient();
        using (var form = Http.ModelForm(await File.ReadAllBytesAsync(TestPaths.Model(Folder, "model.onnx")), "vit16"))
        {
            var response = await client.PostAsync("/v1/models", form);
            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync()); // was: 422, the check crashed
        }
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/vit16"));
        Assert.True(descriptor.Explain.Supported, descriptor.Explain.Reason);
        using var meta = JsonDocument.Parse(await File.ReadAllTextAsync(TestPaths.Model(Folder, "meta.json")));
        var (target, score) = (meta.RootElement.GetProperty("target").GetInt32(), meta.RootElement.GetProperty("score").GetDouble());
        var input = await File.ReadAllBytesAsync(TestPaths.Model(Folder, "input.npy"));

        // The served model's top score: float64's logit, rounded as float16 arithmetic rounds.
        using (var form = Http.TensorForm(input))
        {
            var response = await client.PostAsync("/v1/models/vit16/predict?topK=1", form);
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            var top = (await Http.ReadAsync<PredictResponse>(response)).Predictions.Single().Top.Single();
            Assert.Equal(target, top.Index);
            Assert.Equal(score, top.Score, 2e-3);
        }

        // The maps: PyTorch's float64 ones of the same float16 weights (the model has no rectifier: both rules give the gradient).
        foreach (var (method, reference) in new[] { ("guided-backprop", "guided_backprop.npy"), ("gradient", "gradient.npy") })
        {
            using var form = Http.TensorForm(input);
            var response = await client.PostAsync($"/v1/models/vit16/explain?method={method}&target={target}&format=npy", form);
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            var map = Npy.Read(await Http.ReadBytesAsync(response), long.MaxValue).Data;
            var truth = Npy.Read(await File.ReadAllBytesAsync(TestPaths.Model(Folder, reference)), long.MaxValue).Data;
            Assert.Equal(truth.Length, map.Length);
            var largest = truth.Max(MathF.Abs);
            Assert.All(map.Zip(truth), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-4 * largest, $"{method}: {p.First} against {p.Second}"));
        }

        // The level it is served at, as the descriptor says, is the one kept with the verdict: where this
        // host's ONNX Runtime crashed on all of them, the layout level.
        using var stored = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(_factory.Store, "vit16", StoredVerdict.File)));
        var level = stored.RootElement.GetProperty("graphOptimization").GetString()!;
        Assert.Contains((level, descriptor.GraphOptimization), new[] { (nameof(GraphOptimizationLevel.ORT_ENABLE_ALL), "all"), (nameof(GraphOptimizationLevel.ORT_ENABLE_LAYOUT), "layout") });
    }

    [Fact]
    public async Task The_verdict_keeps_the_level_and_one_written_before_it_was_kept_reads_as_all()
    {
        var directory = Directory.CreateTempSubdirectory("verdict-").FullName;
        try
        {
            var version = ModelVersion.New(new string('a', 64), null);
            var explain = new ExplainDescriptor(false, [], null, null, [], "no");
            await StoredVerdict.WriteAsync(directory, version.Sha256!, new(explain, GraphOptimizationLevel.ORT_ENABLE_LAYOUT), CancellationToken.None);
            Assert.Equal(GraphOptimizationLevel.ORT_ENABLE_LAYOUT, StoredVerdict.Read(directory, version, new ExplainOptions())!.GraphOptimization);

            var path = Path.Combine(directory, StoredVerdict.File);
            var older = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(await File.ReadAllTextAsync(path))!;
            older.Remove("graphOptimization");
            await File.WriteAllTextAsync(path, JsonSerializer.Serialize(older));
            Assert.Equal(GraphOptimizationLevel.ORT_ENABLE_ALL, StoredVerdict.Read(directory, version, new ExplainOptions())!.GraphOptimization);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
