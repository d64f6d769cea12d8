using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Triton's model repository calls over the store: the index (tritonclient's
/// get_model_repository_index) lists each model READY, or UNAVAILABLE with the reason it failed to
/// load; a load loads a folder now instead of at the next poll (polling is off here, so only the
/// load can have loaded it); uploads and unloads through it are refused with where to go instead.
/// </summary>
public sealed class RepositoryExtensionTests : IDisposable
{
    private readonly ServiceFactory _factory = new(settings: new() { ["Saliency:ModelStore:PollSeconds"] = "0", ["Saliency:ApiKey"] = "k" });

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task A_folder_that_fails_is_unavailable_with_its_reason_and_a_load_after_the_fix_serves_it()
    {
        using var client = Client(key: true);
        await Http.ImportFixtureAsync(client, "seed_cnn", "steady");
        using var channel = GrpcChannel.ForAddress("http://localhost:5081", new GrpcChannelOptions { HttpHandler = _factory.Server.CreateHandler() });
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);

        // A folder written into the store by hand (another replica, an operator): its model file is cut short.
        var folder = Path.Combine(_factory.Store, "flaky");
        Directory.CreateDirectory(folder);
        var model = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx"));
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), model[..(model.Length / 2)]);
        WriteManifest(folder, "first");
        Assert.Equal(["steady"], (await IndexAsync(client)).Select(m => (string)m!["name"]!)); // no poll has seen it

        var failed = await client.PostAsync("/v2/repository/models/flaky/load", null);
        Assert.Equal(HttpStatusCode.BadRequest, failed.StatusCode);
        var reason = (string)JsonNode.Parse(await failed.Content.ReadAsStringAsync())!["error"]!;
        Assert.Contains("flaky", reason);
        var flaky = (await IndexAsync(client)).Single(m => (string)m!["name"]! == "flaky")!;
        Assert.Equal("UNAVAILABLE", (string)flaky["state"]!);
        Assert.False(string.IsNullOrEmpty((string)flaky["reason"]!));
        Assert.Equal(["steady"], (await IndexAsync(client, ready: true)).Select(m => (string)m!["name"]!));
        var index = await grpc.RepositoryIndexAsync(new RepositoryIndexRequest());
        Assert.Equal([("flaky", "UNAVAILABLE"), ("steady", "READY")], index.Models.Select(m => (m.Name, m.State)));

        // Fixed in place: the load serves it now, with no poll.
        File.WriteAllBytes(Path.Combine(folder, "model.onnx"), model);
        WriteManifest(folder, "second");
        await grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "flaky" }, new Metadata { { "x-api-key", "k" } });
        Assert.All(await IndexAsync(client), m => Assert.Equal("READY", (string)m!["state"]!));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/models/flaky/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v2/repository/models/flaky/load", null)).StatusCode); // loaded already: nothing to do
    }

    [Fact]
    public async Task Uploads_unloads_unknown_names_and_calls_without_the_key_are_refused()
    {
        using var client = Client(key: true);
        await Http.ImportFixtureAsync(client, "seed_cnn", "steady");
        var upload = await client.PostAsJsonAsync("/v2/repository/models/steady/load", new { parameters = new Dictionary<string, string> { ["file:1/model.onnx"] = "AAAA" } });
        Assert.Equal(HttpStatusCode.BadRequest, upload.StatusCode);
        Assert.Contains("POST /v1/models", await upload.Content.ReadAsStringAsync());
        var unload = await client.PostAsync("/v2/repository/models/steady/unload", null);
        Assert.Equal(HttpStatusCode.BadRequest, unload.StatusCode);
        Assert.Contains("DELETE /v1/models/steady", await unload.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/models/steady/ready")).StatusCode); // still served
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/v2/repository/models/no-such-model/load", null)).StatusCode);
        // Whatever content type a client labels its JSON with (tritonclient sets none of its own).
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v2/repository/models/steady/load", new StringContent("""{"parameters": {}}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/v2/repository/index", new StringContent("{not json"))).StatusCode);

        using var anonymous = Client(key: false);
        Assert.Single(await IndexAsync(anonymous)); // reading is open, as the model metadata is
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/v2/repository/models/steady/load", null)).StatusCode);
        using var channel = GrpcChannel.ForAddress("http://localhost:5081", new GrpcChannelOptions { HttpHandler = _factory.Server.CreateHandler() });
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var refused = await Assert.ThrowsAsync<RpcException>(() => grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "steady" }).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        var unloaded = await Assert.ThrowsAsync<RpcException>(() => grpc.RepositoryModelUnloadAsync(new RepositoryModelUnloadRequest { ModelName = "steady" }, new Metadata { { "x-api-key", "k" } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, unloaded.StatusCode);
    }

    private HttpClient Client(bool key)
    {
        var client = _factory.CreateClient();
        if (key) client.DefaultRequestHeaders.Add("X-Api-Key", "k");
        return client;
    }

    private static void WriteManifest(string folder, string generation)
    {
        var manifest = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("seed_cnn", "model.json")))!;
        manifest["generation"] = generation;
        File.WriteAllText(Path.Combine(folder, "model.json"), manifest.ToJsonString());
    }

    private static async Task<JsonArray> IndexAsync(HttpClient client, bool ready = false)
    {
        var response = ready ? await client.PostAsJsonAsync("/v2/repository/index", new { ready = true }) : await client.PostAsync("/v2/repository/index", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsArray();
    }
}
