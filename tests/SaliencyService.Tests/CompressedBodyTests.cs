using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SaliencyService.Contracts;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Request bodies compressed as Triton takes them (tritonclient's request compression): gzip,
/// deflate and br are decoded on /v1 and /v2 and answer what PyTorch's reference says; the decoded
/// body is held to the endpoint's limit, so a small compressed body cannot expand past it (413);
/// another coding is a 415 and a body its coding cannot decode a 400.
/// </summary>
public sealed class CompressedBodyTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    private static readonly byte[] Tensor = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy"));

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    [InlineData("br")]
    public async Task A_compressed_predict_and_infer_give_the_reference_outputs(string coding)
    {
        var expected = ReferenceCases.Get("seed_cnn", "input0").Outputs;
        using var form = Http.TensorForm(Tensor);
        var response = await Client.PostAsync("/v1/models/seed_cnn/predict?topK=2", Http.Compressed(await form.ReadAsByteArrayAsync(), form.Headers.ContentType, coding));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var top = (await Http.ReadAsync<PredictResponse>(response)).Predictions[0].Top;
        Assert.All(top, s => Assert.Equal(expected[s.Index], s.Score, 1e-4));

        var data = Npy.Read(Tensor, long.MaxValue);
        var json = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "image_input", ["shape"] = new JsonArray(data.Shape.Select(d => (JsonNode)d).ToArray()), ["datatype"] = "FP32",
                ["data"] = new JsonArray(data.Data.Select(v => (JsonNode)v).ToArray()),
            }),
        };
        var infer = await Client.PostAsync("/v2/models/seed_cnn/infer",
            Http.Compressed(Encoding.UTF8.GetBytes(json.ToJsonString()), new MediaTypeHeaderValue("application/json"), coding));
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        var outputs = JsonNode.Parse(await infer.Content.ReadAsStringAsync())!["outputs"]![0]!["data"]!.AsArray().Select(v => (float)v!).ToArray();
        Assert.Equal(expected.Length, outputs.Length);
        Assert.All(expected.Zip(outputs), p => Assert.Equal(p.First, p.Second, 1e-4));
    }

    [Fact]
    public async Task A_compressed_import_is_served()
    {
        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), "gzipped", File.ReadAllText(TestPaths.Fixture("seed_cnn", "model.json")));
        var response = await Client.PostAsync("/v1/models", Http.Compressed(await form.ReadAsByteArrayAsync(), form.Headers.ContentType));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal((await Http.ReadAsync<ModelDescriptor>(response)).Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")))));
    }

    [Fact]
    public async Task Another_coding_is_a_415_and_a_corrupt_body_a_400()
    {
        using var form = Http.TensorForm(Tensor);
        var compress = new ByteArrayContent(await form.ReadAsByteArrayAsync());
        compress.Headers.ContentType = form.Headers.ContentType;
        compress.Headers.ContentEncoding.Add("compress");
        Assert.Contains("Content-Encoding 'compress'", await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/seed_cnn/predict", compress), HttpStatusCode.UnsupportedMediaType));

        var packed = await Http.Compressed(Encoding.UTF8.GetBytes("""{"inputs": []}"""), new MediaTypeHeaderValue("application/json")).ReadAsByteArrayAsync();
        packed[12] ^= 0xFF; // inside the deflate data
        var corrupt = new ByteArrayContent(packed[..^4]);
        corrupt.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        corrupt.Headers.ContentEncoding.Add("gzip");
        var answer = await Client.PostAsync("/v2/models/seed_cnn/infer", corrupt);
        Assert.Equal(HttpStatusCode.BadRequest, answer.StatusCode);
        Assert.NotNull(JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["error"]);
    }

    [Fact]
    public async Task A_small_body_that_expands_past_the_limit_is_a_413()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:MaxRequestBodyBytes"] = (1024 * 1024).ToString() });
        using var client = factory.CreateClient();
        await Http.ImportFixtureAsync(client, "seed_cnn");
        var zeros = new byte[16 * 1024 * 1024]; // ~16 KB compressed
        // A form whose first part is 16 MB of zeros, then the tensor: the reader drains the unknown part and meets the limit.
        using var form = Http.Form(("padding", zeros, "zeros.bin"), ("tensor", Tensor, "input.npy"));
        var v1 = Http.Compressed(await form.ReadAsByteArrayAsync(), form.Headers.ContentType);
        Assert.True(v1.Headers.ContentLength < 1024 * 1024);
        await Http.AssertProblemAsync(await client.PostAsync("/v1/models/seed_cnn/predict", v1), HttpStatusCode.RequestEntityTooLarge);
        var v2 = await client.PostAsync("/v2/models/seed_cnn/infer", Http.Compressed(zeros, new MediaTypeHeaderValue("application/json")));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, v2.StatusCode);
        Assert.NotNull(JsonNode.Parse(await v2.Content.ReadAsStringAsync())!["error"]);
    }
}
