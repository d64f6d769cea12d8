using System.Net;
using System.Text.Json;
using SaliencyService.Contracts;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A model that outputs more than its scores (features, then logits, then the class as int64): the
/// manifest's <c>output</c> says which one predict ranks and explanations explain.
/// </summary>
public sealed class ScoredOutputTests : IDisposable
{
    private const int Inputs = 4;
    private static readonly float[] Features = [0.5f, -1, 2, 0.25f, 1.5f, -0.5f, 1, 1, -2, 0.75f, 0, 3]; // 4 × 3
    private static readonly float[] Logits = [1, -1, 0.5f, 2, -1.5f, 0.25f, 3, -0.5f];                   // 4 × 2
    private static readonly float[] Input = [0.2f, -0.4f, 0.9f, 0.3f];
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    private static byte[] Model() => new OnnxTestModel(13, [1, Inputs])
        .Initializer("a", Features, Inputs, 3)
        .Initializer("b", Logits, Inputs, 2)
        .Node("MatMul", ["x", "a"], ["features"])
        .Node("MatMul", ["x", "b"], ["logits"])
        .Node("ArgMax", ["logits"], ["class"], OnnxTestModel.Int("axis", 1))
        .Output("features").Output("logits").Output("class", TensorProto.Types.DataType.Int64)
        .Bytes();

    /// <summary>x · W in float64, per column.</summary>
    private static double[] Product(float[] weights, int columns) =>
        Enumerable.Range(0, columns).Select(c => Enumerable.Range(0, Inputs).Sum(r => (double)Input[r] * weights[r * columns + c])).ToArray();

    private static async Task<HttpResponseMessage> ImportAsync(HttpClient client, string? output)
    {
        using var form = Http.ModelForm(Model(), "two-heads", output is null ? null : JsonSerializer.Serialize(new { output }));
        return await client.PostAsync("/v1/models", form);
    }

    private static async Task<double[]> ScoresAsync(HttpClient client)
    {
        using var form = Http.TensorForm(Npy.Write(Input, [1, Inputs]));
        var answer = await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/two-heads/predict?topK=10", form));
        return answer.Predictions.Single().Top.OrderBy(s => s.Index).Select(s => (double)s.Score).ToArray();
    }

    [Fact]
    public async Task By_default_the_first_float32_output_is_ranked()
    {
        using var client = _factory.CreateClient();
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await ImportAsync(client, null));
        Assert.Equal("features", descriptor.Preprocessing.Output);
        var expected = Product(Features, 3);
        var scores = await ScoresAsync(client);
        Assert.Equal(expected.Length, scores.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scores[i], 1e-5);
    }

    [Fact]
    public async Task The_manifests_output_is_ranked_and_explained()
    {
        using var client = _factory.CreateClient();
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await ImportAsync(client, "logits"));
        Assert.Equal("logits", descriptor.Preprocessing.Output);
        Assert.True(descriptor.Explain.Supported, descriptor.Explain.Reason);
        var expected = Product(Logits, 2);
        var scores = await ScoresAsync(client);
        Assert.Equal(expected.Length, scores.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scores[i], 1e-5);

        // Linear in x: the gradient of logit 1 is column 1 of its weights.
        using var form = Http.TensorForm(Npy.Write(Input, [1, Inputs]));
        var response = await client.PostAsync("/v1/models/two-heads/explain?method=gradient&target=1&format=npy", form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var map = Npy.Read(await Http.ReadBytesAsync(response), long.MaxValue).Data;
        Assert.Equal(Enumerable.Range(0, Inputs).Select(r => Logits[r * 2 + 1]), map);
    }

    [Theory]
    [InlineData("nowhere", "not an output of the model")]
    [InlineData("class", "int64")]
    public async Task An_output_that_cannot_be_ranked_is_refused_at_import(string output, string reason)
    {
        using var client = _factory.CreateClient();
        var detail = await Http.AssertProblemAsync(await ImportAsync(client, output), HttpStatusCode.BadRequest);
        Assert.Contains(reason, detail);
    }
}
