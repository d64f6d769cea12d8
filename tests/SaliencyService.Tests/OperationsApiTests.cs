using System.Net;
using System.Text.Json;
using SaliencyService.Explain.Mirror;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Health probes and the Swagger description of every endpoint.</summary>
public sealed class OperationsApiTests : IDisposable
{
    private readonly ServiceFactory _factory = new();
    private readonly HttpClient _client;

    public OperationsApiTests() => _client = _factory.CreateClient();

    public void Dispose()
    {
        _client.Dispose();
        _factory.Dispose();
    }

    [Fact]
    public async Task Live_and_ready_answer_200_once_the_store_is_loaded()
    {
        Assert.Equal(HttpStatusCode.OK, (await _client.GetAsync("/health/live")).StatusCode);
        var ready = await _client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync());
        Assert.Equal("Healthy", body.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Swagger_documents_every_endpoint_with_its_uploads_and_problems()
    {
        using var doc = JsonDocument.Parse(await _client.GetStringAsync("/swagger/v1/swagger.json"));
        var paths = doc.RootElement.GetProperty("paths");
        string[] expected = ["/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict", "/v1/models/{name}/explain", "/health/live", "/health/ready", "/metrics",
            "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready", "/v2/models/{name}/infer",
            "/v2/models/{name}/explain", "/v2/models/{name}/versions/{version}/infer"];
        Assert.All(expected, p => Assert.True(paths.TryGetProperty(p, out _), $"{p} is not documented"));
        // /v2 documents its JSON body and the protocol's error object.
        var infer = paths.GetProperty("/v2/models/{name}/infer").GetProperty("post");
        Assert.True(infer.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
        Assert.True(infer.GetProperty("responses").GetProperty("400").GetProperty("content").TryGetProperty("application/json", out _));

        var import = paths.GetProperty("/v1/models").GetProperty("post");
        var importForm = import.GetProperty("requestBody").GetProperty("content").GetProperty("multipart/form-data").GetProperty("schema");
        Assert.Equal("binary", importForm.GetProperty("properties").GetProperty("file").GetProperty("format").GetString());
        Assert.Equal("file", importForm.GetProperty("required")[0].GetString());
        Assert.Equal(JsonValueKind.Object, import.GetProperty("responses").GetProperty("422").GetProperty("content").GetProperty("application/problem+json").ValueKind);

        var predict = paths.GetProperty("/v1/models/{name}/predict").GetProperty("post");
        var images = predict.GetProperty("requestBody").GetProperty("content").GetProperty("multipart/form-data")
            .GetProperty("schema").GetProperty("properties").GetProperty("image");
        Assert.Equal("array", images.GetProperty("type").GetString());
        Assert.Contains(predict.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "topK");

        var explainOperation = paths.GetProperty("/v1/models/{name}/explain").GetProperty("post");
        var explain = explainOperation.GetProperty("responses").GetProperty("200").GetProperty("content");
        Assert.Equal("binary", explain.GetProperty("image/png").GetProperty("schema").GetProperty("format").GetString());

        // Closed parameter sets are enums, the same sets the handler validates against.
        string[] Choices(string name) => explainOperation.GetProperty("parameters").EnumerateArray()
            .Single(p => p.GetProperty("name").GetString() == name).GetProperty("schema").GetProperty("enum")
            .EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(SaliencyService.Explain.Attribution.AttributionMethods.Names.Order(), Choices("method").Order());
        Assert.Equal(Choices("method").Where(m => m != "smoothgrad"), Choices("base")); // SmoothGrad wraps every other method
        // The query record keeps each parameter's description.
        var steps = explainOperation.GetProperty("parameters").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "steps");
        Assert.Contains("Integrated gradients", steps.GetProperty("description").GetString());
        Assert.Equal(["png", "json", "npy"], Choices("format"));
        Assert.Equal(["heatmap", "overlay", "rgb", "gray"], Choices("view"));
        Assert.Equal(["absolute", "positive", "negative", "diverging"], Choices("sign"));
        Assert.Contains("inferno", Choices("colormap"));
    }

    [Fact]
    public async Task Metrics_count_requests_latency_engine_time_queues_and_models()
    {
        await Http.ImportFixtureAsync(_client, "seed_cnn");
        using (var predict = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png")))
            Assert.Equal(HttpStatusCode.OK, (await _client.PostAsync("/v1/models/seed_cnn/predict", predict)).StatusCode);
        using (var explain = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png")))
            Assert.Equal(HttpStatusCode.OK, (await _client.PostAsync("/v1/models/seed_cnn/explain?method=gradient", explain)).StatusCode);
        await _client.GetAsync("/v1/models/missing");

        var response = await _client.GetAsync("/metrics");
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("saliency_http_requests_total{route=\"/v1/models/{name}/predict\",method=\"POST\",status=\"200\"} 1", text);
        Assert.Contains("saliency_http_requests_total{route=\"/v1/models/\",method=\"POST\",status=\"201\"} 1", text);
        Assert.Contains("saliency_http_requests_total{route=\"/v1/models/{name}\",method=\"GET\",status=\"404\"} 1", text);
        Assert.Contains("saliency_http_request_duration_seconds_bucket{route=\"/v1/models/{name}/explain\",method=\"POST\",le=\"+Inf\"} 1", text);
        Assert.Contains("saliency_engine_duration_seconds_count{engine=\"onnxruntime\"} 1", text);
        Assert.Contains("saliency_engine_duration_seconds_count{engine=\"explain:onnxruntime:gradient\"} 1", text); // seed_cnn's gradients run on ONNX Runtime
        Assert.Contains("saliency_queue_requests{queue=\"explain\"} 0", text);
        Assert.Contains("saliency_models_loaded{explainable=\"true\"} 1", text);
    }

    [Fact]
    public async Task Metrics_report_each_winograd_race_of_the_process_by_shape_and_side()
    {
        // A race of a shape of its own (races are kept for the process, by shape).
        var outcome = new WinogradRace(TestSessions.Open).Race(40, 24, 5, 6);
        var text = await _client.GetStringAsync("/metrics");
        Assert.Contains("# TYPE saliency_winograd_race_milliseconds gauge", text);
        foreach (var (side, milliseconds) in new[] { ("onnxruntime", outcome.Convolution), ("reorders", outcome.Reorders), ("f2x2", outcome.Kernel2), ("f4x4", outcome.Kernel4) })
        {
            var line = $"saliency_winograd_race_milliseconds{{shape=\"40x24x5x6\",side=\"{side}\"}} ";
            // A side that failed or was not raced (no engine kernels built here) has no line.
            if (double.IsFinite(milliseconds)) Assert.Contains(line + milliseconds.ToString("G4", System.Globalization.CultureInfo.InvariantCulture) + "\n", text);
            else Assert.DoesNotContain(line, text);
        }
        Assert.Contains($"saliency_winograd_race_rounds_alone{{shape=\"40x24x5x6\"}} {outcome.RoundsAlone}\n", text);
    }

    [Fact]
    public async Task Metrics_report_each_stride_2_race_of_the_process_by_shape_and_side()
    {
        var outcome = new WinogradRace(TestSessions.Open).RaceStrided(40, 24, 9, 6);
        var text = await _client.GetStringAsync("/metrics");
        Assert.Contains("# TYPE saliency_winograd_stride2_race_milliseconds gauge", text);
        foreach (var (side, milliseconds) in new[] { ("onnxruntime", outcome.Convolution), ("stride2", outcome.Kernel), ("columns", outcome.Columns), ("transposed", outcome.Transposed) })
        {
            var line = $"saliency_winograd_stride2_race_milliseconds{{shape=\"40x24x9x6\",side=\"{side}\"}} ";
            if (double.IsFinite(milliseconds)) Assert.Contains(line + milliseconds.ToString("G4", System.Globalization.CultureInfo.InvariantCulture) + "\n", text);
            else Assert.DoesNotContain(line, text);
        }
        Assert.Contains($"saliency_winograd_race_rounds_alone{{shape=\"40x24x9x6\",stride=\"2\"}} {outcome.RoundsAlone}\n", text);
    }

    [Fact]
    public async Task Tracing_to_an_unreachable_collector_never_disturbs_requests()
    {
        using var traced = new ServiceFactory(settings: new() { ["Saliency:Tracing:OtlpEndpoint"] = "http://127.0.0.1:9/" });
        using var client = traced.CreateClient();
        await Http.ImportFixtureAsync(client, "mini_resnet");
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/models/mini_resnet/explain?format=npy", form)).StatusCode);
    }

    [Fact]
    public async Task Swagger_UI_is_served()
    {
        var page = await _client.GetAsync("/swagger/index.html");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("swagger-ui", await page.Content.ReadAsStringAsync());
    }
}
