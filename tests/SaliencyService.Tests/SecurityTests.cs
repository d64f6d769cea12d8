using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>API keys on model management (and optionally inference), and per-client rate limits.</summary>
public sealed class SecurityTests
{
    private static MultipartFormDataContent Upload() =>
        Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx")), "guarded");

    [Fact]
    public async Task Model_management_needs_the_key_while_reading_and_predicting_do_not()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:ApiKey"] = "s3cret-key" });
        using var client = factory.CreateClient();

        using (var form = Upload())
            await Http.AssertProblemAsync(await client.PostAsync("/v1/models", form), HttpStatusCode.Unauthorized);
        using (var form = Upload())
        {
            var wrong = new HttpRequestMessage(HttpMethod.Post, "/v1/models") { Content = form };
            wrong.Headers.Add("X-Api-Key", "s3cret-kez");
            await Http.AssertProblemAsync(await client.SendAsync(wrong), HttpStatusCode.Forbidden);
        }
        Assert.False(Directory.Exists(Path.Combine(factory.Store, "guarded")));

        client.DefaultRequestHeaders.Add("X-Api-Key", "s3cret-key");
        using (var form = Upload())
            Assert.Equal(HttpStatusCode.Created, (await client.PostAsync("/v1/models", form)).StatusCode);

        using var anonymous = factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/v1/models/guarded")).StatusCode);
        using (var predict = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy"))))
            Assert.Equal(HttpStatusCode.OK, (await anonymous.PostAsync("/v1/models/guarded/predict", predict)).StatusCode);
        await Http.AssertProblemAsync(await anonymous.DeleteAsync("/v1/models/guarded"), HttpStatusCode.Unauthorized);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/v1/models/guarded")).StatusCode);
    }

    [Fact]
    public async Task The_key_can_guard_inference_too()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:ApiKey"] = "k", ["Saliency:ApiKeyForInference"] = "true" });
        using var client = factory.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", "k");
        await Http.ImportFixtureAsync(client, "seed_cnn");

        using var anonymous = factory.CreateClient();
        using (var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png")))
            await Http.AssertProblemAsync(await anonymous.PostAsync("/v1/models/seed_cnn/predict", form), HttpStatusCode.Unauthorized);
        using (var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png")))
            await Http.AssertProblemAsync(await anonymous.PostAsync("/v1/models/seed_cnn/explain", form), HttpStatusCode.Unauthorized);
        using (var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png")))
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/models/seed_cnn/predict", form)).StatusCode);
    }

    [Fact]
    public async Task A_client_over_its_rate_gets_429_with_retry_after()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:RateLimit:PermitsPerSecond"] = "1", ["Saliency:RateLimit:Burst"] = "3" });
        using var client = factory.CreateClient();
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 6; i++)
        {
            var response = await client.GetAsync("/v1/models");
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) limited = response;
        }
        Assert.Contains(HttpStatusCode.OK, statuses);
        Assert.NotNull(limited);
        await Http.AssertProblemAsync(limited!, HttpStatusCode.TooManyRequests);
        Assert.NotNull(limited!.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode); // probes are never limited
    }

    [Fact]
    public async Task Over_its_rate_on_v2_a_client_gets_the_protocols_error_with_retry_after()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:RateLimit:PermitsPerSecond"] = "1", ["Saliency:RateLimit:Burst"] = "2" });
        using var client = factory.CreateClient();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 5 && limited is null; i++)
        {
            using var content = new StringContent("""{"inputs": []}""", System.Text.Encoding.UTF8, "application/json");
            var response = await client.PostAsync("/v2/models/any/infer", content);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) limited = response;
        }
        Assert.NotNull(limited);
        Assert.Equal("application/json", limited!.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Rate limit", (string)System.Text.Json.Nodes.JsonNode.Parse(await limited.Content.ReadAsStringAsync())!["error"]!);
        Assert.NotNull(limited.Headers.RetryAfter);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Behind_a_gateway_each_forwarded_client_has_its_own_rate(bool forwardedHeaders)
    {
        // The compose stack turns forwarded headers on (only its gateway reaches the service): the
        // limit then falls on each client the gateway names, not on the gateway as one client.
        using var factory = new ServiceFactory(settings: new()
        {
            ["Saliency:RateLimit:PermitsPerSecond"] = "1",
            ["Saliency:RateLimit:Burst"] = "2",
            ["FORWARDEDHEADERS_ENABLED"] = forwardedHeaders ? "true" : "false", // ASPNETCORE_FORWARDEDHEADERS_ENABLED
        });
        using var client = factory.CreateClient();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Add("X-Forwarded-For", $"203.0.113.{i}"); // nginx's $proxy_add_x_forwarded_for, one client each
            statuses.Add((await client.SendAsync(request)).StatusCode);
        }
        if (forwardedHeaders) Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        else Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
    }
}
