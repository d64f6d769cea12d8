using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>The Server-Timing header: where a prediction's or an explanation's time went inside the service.</summary>
public sealed class ServerTimingTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    [Fact]
    public async Task A_prediction_reports_reading_queueing_and_its_batch_run_within_the_time_the_client_saw()
    {
        var (stages, clientMs) = await PostAsync("/v1/models/seed_cnn/predict");
        Assert.Equal(["read", "queue", "predict"], stages.Select(s => s.Name));
        Assert.Equal("batch of 1", stages[2].Description);
        Assert.All(stages, s => Assert.True(s.Ms >= 0));
        Assert.True(stages.Sum(s => s.Ms) <= clientMs, $"stages sum to {stages.Sum(s => s.Ms)} ms, the client saw {clientMs} ms");
    }

    [Fact]
    public async Task An_explanation_reports_its_engine_time_and_a_repeat_reports_the_cache_instead()
    {
        const string path = "/v1/models/seed_cnn/explain?format=npy&target=1";
        var (first, clientMs) = await PostAsync(path);
        Assert.Equal(["read", "queue", "explain"], first.Select(s => s.Name));
        Assert.True(first.Sum(s => s.Ms) <= clientMs);

        var (repeat, _) = await PostAsync(path);
        Assert.Equal(["read", "cache"], repeat.Select(s => s.Name));
        Assert.Equal("hit", repeat[1].Description);
    }

    [Theory]
    [InlineData("png", 0)]
    [InlineData("json", 1)]
    public async Task A_picture_reports_its_drawing_after_the_engine(string format, int target)
    {
        var (stages, clientMs) = await PostAsync($"/v1/models/seed_cnn/explain?format={format}&target={target}&method=gradient");
        Assert.Equal(["read", "queue", "explain", "render"], stages.Select(s => s.Name));
        Assert.True(stages.Sum(s => s.Ms) <= clientMs, $"stages sum to {stages.Sum(s => s.Ms)} ms, the client saw {clientMs} ms");
    }

    [Fact]
    public async Task An_open_inference_protocol_infer_reports_the_same_stages()
    {
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), long.MaxValue);
        var metadata = JsonNode.Parse(await Client.GetStringAsync("/v2/models/seed_cnn"))!;
        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = (string)metadata["inputs"]![0]!["name"]!, ["datatype"] = "FP32",
                ["shape"] = new JsonArray(tensor.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data"] = new JsonArray(tensor.Data.Select(v => (JsonNode)v).ToArray()),
            }),
        };
        var (stages, _) = await PostAsync("/v2/models/seed_cnn/infer", new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(["read", "queue", "predict"], stages.Select(s => s.Name));
    }

    [Fact]
    public async Task An_import_reports_its_upload_its_isolated_check_and_the_build_the_verdict_asked_for()
    {
        var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx")), "timed-import",
            File.ReadAllText(TestPaths.Fixture("mini_resnet", "model.json")));
        var (stages, clientMs) = await PostAsync("/v1/models", form);
        try
        {
            Assert.Equal(["upload", "check", "build"], stages.Select(s => s.Name));
            Assert.Equal("isolated", stages[1].Description);
            Assert.All(stages, s => Assert.True(s.Ms > 0));
            Assert.True(stages.Sum(s => s.Ms) <= clientMs, $"stages sum to {stages.Sum(s => s.Ms)} ms, the client saw {clientMs} ms");
        }
        finally
        {
            await Client.DeleteAsync("/v1/models/timed-import");
        }
    }

    private Task<(List<(string Name, string? Description, double Ms)> Stages, double ClientMs)> PostAsync(string path) =>
        PostAsync(path, Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy"))));

    private async Task<(List<(string Name, string? Description, double Ms)> Stages, double ClientMs)> PostAsync(string path, HttpContent content)
    {
        using var body = content;
        var clock = Stopwatch.StartNew();
        var response = await Client.PostAsync(path, body);
        await Http.ReadBytesAsync(response);
        var clientMs = clock.Elapsed.TotalMilliseconds;
        var header = string.Join(",", response.Headers.GetValues("Server-Timing"));
        var stages = header.Split(',', StringSplitOptions.TrimEntries).Select(entry =>
        {
            var parts = entry.Split(';');
            string? Param(string key) => parts.Skip(1).Select(p => p.Split('=', 2)).Where(p => p[0] == key).Select(p => p[1].Trim('"')).FirstOrDefault();
            return (parts[0], Param("desc"), double.Parse(Param("dur")!, CultureInfo.InvariantCulture));
        }).ToList();
        return (stages, clientMs);
    }
}
