using System.Net;
using System.Text.RegularExpressions;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Dynamic batching: concurrent predictions on a model with a dynamic batch dimension share ONNX
/// Runtime runs, and each request still gets exactly its own samples' scores.
/// </summary>
public sealed class PredictBatchingTests
{
    // mini_resnet: input0 and input1 as images, and both in one request (a two-sample request
    // must keep its order and not swallow a neighbour's sample).
    private static readonly string[][] Requests = [["input0"], ["input1"], ["input0", "input1"], ["input1"], ["input1", "input0"], ["input0"]];

    [Fact]
    public async Task Concurrent_requests_are_batched_and_each_gets_its_own_scores()
    {
        // A queue delay holds the first batch open long enough for the others to join it. The
        // rounds after the first write into the array the first batch left, the second one a
        // smaller batch than that array holds.
        Dictionary<string, string?> settings = new() { ["Saliency:Predict:MaxQueueDelayMilliseconds"] = "300" };
        string[][][] rounds = [Requests, Requests[1..3], Requests];
        var (batches, samples) = await PredictAllAtOnceAsync(settings, rounds);
        Assert.Equal(rounds.Sum(round => round.Sum(r => r.Length)), samples);
        Assert.True(batches < rounds.Sum(round => round.Length), $"{rounds.Sum(round => round.Length)} requests in rounds of concurrent ones ran as {batches} batches: none was shared");
    }

    [Fact]
    public async Task MaxBatchSize_1_turns_batching_off()
    {
        Assert.Equal((0, 0), await PredictAllAtOnceAsync(new() { ["Saliency:Predict:MaxBatchSize"] = "1" }));
    }

    [Fact]
    public async Task A_batch_never_exceeds_MaxBatchSize_samples()
    {
        var (batches, samples) = await PredictAllAtOnceAsync(new()
        {
            ["Saliency:Predict:MaxQueueDelayMilliseconds"] = "300",
            ["Saliency:Predict:MaxBatchSize"] = "2",
        });
        // 8 samples in batches of at most 2 samples: at least 4 runs.
        Assert.Equal(8, samples);
        Assert.True(batches >= 4, $"8 samples ran in {batches} batches of at most 2");
    }

    [Fact]
    public async Task V2_infer_requests_join_the_same_batches_as_v1_predictions()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:Predict:MaxQueueDelayMilliseconds"] = "300" });
        using var client = factory.CreateClient();
        var descriptor = await Http.ImportFixtureAsync(client, "mini_resnet");
        var stems = new[] { "input0", "input1", "input1", "input0" };
        await Task.WhenAll(stems.Select(async (stem, i) =>
        {
            var c = ReferenceCases.Get("mini_resnet", stem);
            var tensorPath = TestPaths.Fixture("mini_resnet", stem + ".tensor.npy");
            if (i % 2 == 0)
            {
                using var form = Http.TensorForm(File.ReadAllBytes(tensorPath));
                var result = await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/mini_resnet/predict?topK=10", form));
                PredictApiTests.AssertMatches(c, result.Predictions[0]);
                return;
            }
            var tensor = SaliencyService.Explain.Tensors.Npy.Read(File.ReadAllBytes(tensorPath), long.MaxValue);
            var request = System.Text.Json.JsonSerializer.Serialize(new
            {
                inputs = new[] { new { name = descriptor.Preprocessing.Input, shape = tensor.Shape, datatype = "FP32", data = tensor.Data } },
            });
            var response = await client.PostAsync("/v2/models/mini_resnet/infer", new StringContent(request, System.Text.Encoding.UTF8, "application/json"));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, body);
            var outputs = System.Text.Json.Nodes.JsonNode.Parse(body)!["outputs"]![0]!["data"]!.AsArray().Select(v => (float)v!).ToArray();
            var scale = c.Outputs.Max(Math.Abs);
            Assert.True(c.Outputs.Zip(outputs, (e, a) => Math.Abs(e - a)).Max() <= 1e-4 * scale);
        }));
        var (batches, samples) = await BatchCountersAsync(client);
        Assert.Equal(stems.Length, samples);
        Assert.True(batches < stems.Length, $"{stems.Length} concurrent v1 and v2 requests ran as {batches} batches: none was shared");
    }

    [Fact]
    public async Task A_request_the_model_cannot_run_fails_alone_and_its_batch_neighbours_get_their_scores()
    {
        // A model that fails on its input's values, not its shape: each channel's mean indexes a
        // table of 4 scores, so a channel averaging 100 is an index out of range in ONNX Runtime's
        // Gather. Held open by the queue delay, the three requests run as one batch first.
        var table = new[] { 0.5f, 1.5f, 2.5f, 3.5f };
        var model = new OnnxTestModel(13, [-1, 3, 4, 4])
            .Initializer("table", table, 4)
            .Node("GlobalAveragePool", ["x"], ["g"])
            .Node("Flatten", ["g"], ["f"])
            .Node("Cast", ["f"], ["i"], OnnxTestModel.Int("to", (long)TensorProto.Types.DataType.Int64))
            .Node("Gather", ["table", "i"], ["y"])
            .Output("y").Bytes();
        using var factory = new ServiceFactory(settings: new() { ["Saliency:Predict:MaxQueueDelayMilliseconds"] = "300" });
        using var client = factory.CreateClient();
        using (var form = Http.ModelForm(model, "lookup"))
        {
            var imported = await client.PostAsync("/v1/models", form);
            Assert.True(imported.StatusCode == HttpStatusCode.Created, await imported.Content.ReadAsStringAsync());
        }

        float[] means = [1, 100, 2]; // every channel of a request has this mean; 100 is out of the table
        var responses = await Task.WhenAll(means.Select(async mean =>
        {
            using var form = Http.TensorForm(Npy.Write(Enumerable.Repeat(mean, 3 * 4 * 4).ToArray(), [1, 3, 4, 4]));
            return await client.PostAsync("/v1/models/lookup/predict?topK=3", form);
        }));

        var detail = await Http.AssertProblemAsync(responses[1], HttpStatusCode.UnprocessableEntity);
        Assert.Contains("cannot run on this input", detail);
        foreach (var (response, mean) in new[] { (responses[0], 1), (responses[2], 2) })
        {
            var result = await Http.ReadAsync<PredictResponse>(response);
            var scores = Assert.Single(result.Predictions).Top;
            Assert.Equal(3, scores.Count);
            Assert.All(scores, s => Assert.Equal(table[mean], s.Score));
        }
    }

    /// <summary>
    /// Sends each round's requests at once (<see cref="Requests"/> by default), round after round,
    /// checks each answer, and returns the batch counters.
    /// </summary>
    private static async Task<(long Batches, long Samples)> PredictAllAtOnceAsync(Dictionary<string, string?> settings, string[][][]? rounds = null)
    {
        using var factory = new ServiceFactory(settings: settings);
        using var client = factory.CreateClient();
        await Http.ImportFixtureAsync(client, "mini_resnet");
        foreach (var round in rounds ?? [Requests])
            await Task.WhenAll(round.Select(stems => PredictAndCheckAsync(client, stems)));
        return await BatchCountersAsync(client);
    }

    private static async Task PredictAndCheckAsync(HttpClient client, string[] stems)
    {
        using var form = Http.ImageForm(stems.Select(s => TestPaths.Fixture("mini_resnet", s + ".png")).ToArray());
        var response = await client.PostAsync("/v1/models/mini_resnet/predict?topK=10", form);
        var result = await Http.ReadAsync<PredictResponse>(response);
        Assert.Equal(stems.Length, result.Predictions.Count);
        for (var i = 0; i < stems.Length; i++)
            PredictApiTests.AssertMatches(ReferenceCases.Get("mini_resnet", stems[i]), result.Predictions[i]);
    }

    private static async Task<(long Batches, long Samples)> BatchCountersAsync(HttpClient client)
    {
        var metrics = await client.GetStringAsync("/metrics");
        long Read(string name) => long.Parse(Regex.Match(metrics, $@"^{name} (\d+)$", RegexOptions.Multiline).Groups[1].Value);
        return (Read("saliency_predict_batches_total"), Read("saliency_predict_batched_samples_total"));
    }
}
