using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using SaliencyService.Api.Models;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// <c>/v2</c> names a model's versions as Triton does, by number: 1 for a name's first import, one
/// more for each replace, so a Triton client's <c>model_version="1"</c> and perf_analyzer's
/// reading of the statistics' versions as integers work; the generation a version had before it
/// was numbered still names it.
/// </summary>
public sealed class ModelVersionNumberTests : IDisposable
{
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task A_replace_counts_one_more_and_only_the_served_version_answers()
    {
        using var client = _factory.CreateClient();
        await Http.ImportFixtureAsync(client, "seed_cnn", "counted");
        Assert.Equal(["1"], await VersionsAsync(client));
        Assert.Equal("1", await InferVersionAsync(client, "/v2/models/counted/versions/1/infer"));

        await Http.ImportFixtureAsync(client, "seed_cnn", "counted", replace: true);
        await Http.ImportFixtureAsync(client, "seed_cnn", "counted", replace: true);
        Assert.Equal(["3"], await VersionsAsync(client));
        Assert.Equal("3", await InferVersionAsync(client, "/v2/models/counted/infer"));
        Assert.Equal("3", await InferVersionAsync(client, "/v2/models/counted/versions/3/infer"));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v2/models/counted/versions/1")).StatusCode);
        var earlier = await client.GetAsync("/v2/models/counted/versions/2/ready");
        Assert.Equal(HttpStatusCode.NotFound, earlier.StatusCode);
        Assert.Contains("serves version '3'", await earlier.Content.ReadAsStringAsync());

        // The generation in model.json, what /v2 reported before numbers, still names the version.
        var generation = (string)JsonNode.Parse(File.ReadAllText(Path.Combine(_factory.Store, "counted", "model.json")))!["generation"]!;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/v2/models/counted/versions/{generation}/ready")).StatusCode);

        // A deleted name starts again, as a model reloaded into an empty Triton repository would.
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/v1/models/counted")).StatusCode);
        await Http.ImportFixtureAsync(client, "seed_cnn", "counted");
        Assert.Equal(["1"], await VersionsAsync(client));
    }

    [Fact]
    public async Task Statistics_are_listed_and_grpc_gives_the_counts_REST_gives()
    {
        using var client = _factory.CreateClient();
        await Http.ImportFixtureAsync(client, "seed_cnn", "counted");
        await Http.ImportFixtureAsync(client, "seed_cnn", "counted", replace: true);
        var extensions = JsonNode.Parse(await client.GetStringAsync("/v2"))!["extensions"]!.AsArray().Select(e => (string)e!);
        Assert.Contains("statistics", extensions);

        using var channel = GrpcChannel.ForAddress("http://localhost:5081", new GrpcChannelOptions { HttpHandler = _factory.Server.CreateHandler() });
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var metadata = await grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = "counted" });
        var input = metadata.Inputs[0];
        var sample = input.Shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        for (var samples = 1; samples <= 2; samples++)
        {
            var request = new ModelInferRequest { ModelName = "counted", ModelVersion = "2" };
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
            {
                Name = input.Name, Datatype = "FP32", Shape = { new[] { (long)samples }.Concat(input.Shape.Skip(1)) },
                Contents = new InferTensorContents { Fp32Contents = { Enumerable.Repeat(0.5f, (int)(samples * sample)) } },
            });
            Assert.Equal("2", (await grpc.ModelInferAsync(request)).ModelVersion);
        }

        var stats = Assert.Single((await grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "counted" })).ModelStats);
        Assert.Equal("2", stats.Version);
        Assert.Equal(2UL, stats.InferenceStats.Success.Count);
        Assert.Equal(3UL, stats.InferenceCount);
        Assert.Equal(2UL, stats.ExecutionCount);
        Assert.True(stats.InferenceStats.ComputeInfer.Ns > 0);
        Assert.Equal([1UL, 2UL], stats.BatchStats.Select(b => b.BatchSize));
        Assert.Single((await grpc.ModelStatisticsAsync(new ModelStatisticsRequest())).ModelStats); // every model: the one here

        // REST: the same figures, as numbers (as Triton's REST writes them), version as an integer.
        var rest = JsonNode.Parse(await client.GetStringAsync("/v2/models/counted/versions/2/stats"))!["model_stats"]![0]!;
        Assert.Equal(2L, long.Parse((string)rest["version"]!));
        Assert.Equal((long)stats.InferenceCount, (long)rest["inference_count"]!);
        Assert.Equal((long)stats.InferenceStats.Success.Count, (long)rest["inference_stats"]!["success"]!["count"]!);
        Assert.Equal((long)stats.InferenceStats.ComputeInfer.Ns, (long)rest["inference_stats"]!["compute_infer"]!["ns"]!);
        Assert.Equal(0L, (long)rest["inference_stats"]!["cache_hit"]!["count"]!);
        Assert.Equal(2, rest["batch_stats"]!.AsArray().Count);

        var old = await Assert.ThrowsAsync<RpcException>(() => grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "counted", Version = "1" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, old.StatusCode);
        var missing = await Assert.ThrowsAsync<RpcException>(() => grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "no-such-model" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Theory]
    [InlineData("""{"generation": "g"}""", 1)]                       // written before versions were numbered
    [InlineData("""{"generation": "g", "versionNumber": 7}""", 7)]
    [InlineData("""{"generation": "g", "versionNumber": 0}""", 1)]   // edited by hand: not a version number
    [InlineData("""{"generation": "g", "versionNumber": "7"}""", 1)]
    public void A_folder_reads_its_number_or_one(string manifest, long number)
    {
        var folder = Directory.CreateTempSubdirectory("version-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "model.json"), manifest);
            var version = ModelVersion.Read(folder)!;
            Assert.Equal(number, version.Number);
            Assert.Equal(number + 1, ModelVersion.New("sha", version).Number);
            Assert.Equal(1, ModelVersion.New("sha", null).Number);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<string[]> VersionsAsync(HttpClient client) =>
        JsonNode.Parse(await client.GetStringAsync("/v2/models/counted"))!["versions"]!.AsArray().Select(v => (string)v!).ToArray();

    private static async Task<string> InferVersionAsync(HttpClient client, string path)
    {
        var metadata = JsonNode.Parse(await client.GetStringAsync("/v2/models/counted"))!;
        var input = metadata["inputs"]![0]!;
        var shape = input["shape"]!.AsArray().Select(d => Math.Max(1, (long)d!)).ToArray();
        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = (string)input["name"]!, ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()), ["datatype"] = "FP32",
                ["data"] = new JsonArray(Enumerable.Repeat(0.5, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(v => (JsonNode)v).ToArray()),
            }),
        };
        var response = await client.PostAsJsonAsync(path, request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["model_version"]!;
    }
}
