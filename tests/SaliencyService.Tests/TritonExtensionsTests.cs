using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Triton's model configuration and statistics extensions, as Triton's clients and perf_analyzer
/// read them: the config's per-sample dims are the metadata's shape without its batch dimension,
/// and the statistics count the requests, samples and runs sent here (deltas, so other work on
/// the service does not matter).
/// </summary>
public sealed class TritonExtensionsTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    [Fact]
    public async Task The_config_gives_the_batchers_size_and_the_per_sample_dims_of_the_metadata()
    {
        var metadata = JsonNode.Parse(await Client.GetStringAsync("/v2/models/mini_resnet"))!;
        var config = JsonNode.Parse(await Client.GetStringAsync("/v2/models/mini_resnet/config"))!;
        Assert.Equal("mini_resnet", (string)config["name"]!);
        Assert.Equal("onnxruntime_onnx", (string)config["platform"]!);
        Assert.Equal(16, (int)config["max_batch_size"]!); // Saliency:Predict:MaxBatchSize's default
        Assert.NotNull(config["dynamic_batching"]);
        foreach (var (kind, tensors) in new[] { ("input", "inputs"), ("output", "outputs") })
        {
            var described = metadata[tensors]!.AsArray();
            var configured = config[kind]!.AsArray();
            Assert.Equal(described.Select(t => (string)t!["name"]!), configured.Select(t => (string)t!["name"]!));
            foreach (var (d, c) in described.Zip(configured))
            {
                Assert.Equal("TYPE_" + (string)d!["datatype"]!, (string)c!["data_type"]!);
                // int64 as protobuf's JSON writes it, a string, as Triton answers.
                Assert.Equal(d["shape"]!.AsArray().Skip(1).Select(v => (long)v!), c["dims"]!.AsArray().Select(v => long.Parse((string)v!)));
            }
        }
        var version = (string)metadata["versions"]![0]!;
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync($"/v2/models/mini_resnet/versions/{version}/config")).StatusCode);
        // Listed, so clients look for it.
        var extensions = JsonNode.Parse(await Client.GetStringAsync("/v2"))!["extensions"]!.AsArray().Select(e => (string)e!).ToList();
        Assert.Contains("model_configuration", extensions);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync("/v2/models/no-such-model/config")).StatusCode);
    }

    [Fact]
    public async Task The_statistics_count_the_requests_samples_and_runs_sent()
    {
        var before = await StatsAsync("mini_resnet");
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")), long.MaxValue);
        var input = ((string)JsonNode.Parse(await Client.GetStringAsync("/v2/models/mini_resnet"))!["inputs"]![0]!["name"])!;
        for (var samples = 1; samples <= 3; samples++)
        {
            var shape = new JsonArray(samples, 3, 32, 32);
            var data = new JsonArray(Enumerable.Repeat(tensor.Data, samples).SelectMany(d => d).Select(v => (JsonNode)v).ToArray());
            var request = new JsonObject { ["inputs"] = new JsonArray(new JsonObject { ["name"] = input, ["shape"] = shape, ["datatype"] = "FP32", ["data"] = data }) };
            Assert.Equal(HttpStatusCode.OK, (await Client.PostAsJsonAsync("/v2/models/mini_resnet/infer", request)).StatusCode);
        }
        var bad = new JsonObject { ["inputs"] = new JsonArray(new JsonObject { ["name"] = input, ["shape"] = new JsonArray(1, 3, 32, 32), ["datatype"] = "FP32", ["data"] = new JsonArray(1f) }) };
        Assert.Equal(HttpStatusCode.BadRequest, (await Client.PostAsJsonAsync("/v2/models/mini_resnet/infer", bad)).StatusCode); // refused before it runs

        var after = await StatsAsync("mini_resnet");
        long Delta(params string[] path) => Read(after, path) - Read(before, path);
        Assert.Equal(3, Delta("inference_stats", "success", "count"));
        Assert.Equal(6, Delta("inference_count")); // 1 + 2 + 3 samples
        Assert.Equal(3, Delta("execution_count")); // one after the other: no batch to share
        Assert.Equal(3, Delta("inference_stats", "queue", "count"));
        Assert.Equal(3, Delta("inference_stats", "compute_infer", "count"));
        Assert.True(Delta("inference_stats", "success", "ns") >= Delta("inference_stats", "compute_infer", "ns"));
        Assert.True(Delta("inference_stats", "compute_infer", "ns") > 0);
        Assert.True(Read(after, "last_inference") > DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds());
        var sizes = after["batch_stats"]!.AsArray().Select(b => (long)b!["batch_size"]!).ToList();
        Assert.Contains(3L, sizes);
        Assert.Equal(Read(after, "execution_count"), after["batch_stats"]!.AsArray().Sum(b => (long)b!["compute_infer"]!["count"]!));

        var all = JsonNode.Parse(await Client.GetStringAsync("/v2/models/stats"))!["model_stats"]!.AsArray();
        Assert.Equal(FixtureModelsService.Models.Order(), all.Select(m => (string)m!["name"]!).Order());
    }

    private async Task<JsonNode> StatsAsync(string model)
    {
        var stats = JsonNode.Parse(await Client.GetStringAsync($"/v2/models/{model}/stats"))!["model_stats"]!.AsArray();
        var only = Assert.Single(stats)!;
        Assert.Equal(model, (string)only["name"]!);
        return only;
    }

    private static long Read(JsonNode node, params string[] path) => (long)path.Aggregate(node, (n, key) => n[key]!);
}
