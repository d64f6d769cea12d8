using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Predictions over HTTP against the PyTorch reference outputs of cases.json.</summary>
public sealed class PredictApiTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private const float Tolerance = 1e-4f;
    private HttpClient Client => service.Client;

    public static IEnumerable<object[]> Cases => ReferenceCases.AsTheoryData();

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Image_input_gives_the_reference_top1_and_scores(string model, string stem)
    {
        var reference = ReferenceCases.Get(model, stem);
        using var form = Http.ImageForm(TestPaths.Fixture(model, stem + ".png"));
        var result = await PredictAsync(model, form, reference.Outputs.Length);
        AssertMatches(reference, Assert.Single(result.Predictions));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Tensor_input_gives_the_reference_top1_and_scores(string model, string stem)
    {
        var reference = ReferenceCases.Get(model, stem);
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")));
        var result = await PredictAsync(model, form, reference.Outputs.Length);
        AssertMatches(reference, Assert.Single(result.Predictions));
    }

    [Fact]
    public async Task Parts_other_than_the_input_are_skipped_wherever_they_come()
    {
        var reference = ReferenceCases.Get("mini_resnet", "input1");
        using var form = new MultipartFormDataContent { { new StringContent("before"), "note" } };
        form.Add(new ByteArrayContent(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input1.tensor.npy"))), "tensor", "input.npy");
        form.Add(new ByteArrayContent(new byte[100_000]), "attachment", "padding.bin");
        var result = await PredictAsync("mini_resnet", form, reference.Outputs.Length);
        AssertMatches(reference, Assert.Single(result.Predictions));
    }

    [Fact]
    public async Task Tensor_without_batch_dimension_is_accepted()
    {
        var reference = ReferenceCases.Get("mini_resnet", "input1");
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input1.tensor.npy")), long.MaxValue);
        using var form = Http.TensorForm(Npy.Write(tensor.Data, tensor.Shape[1..]));
        var result = await PredictAsync("mini_resnet", form, reference.Outputs.Length);
        AssertMatches(reference, Assert.Single(result.Predictions));
    }

    [Fact]
    public async Task Several_images_form_one_batch_in_upload_order()
    {
        var stems = new[] { "input2", "input0", "input3" };
        using var form = Http.ImageForm(stems.Select(s => TestPaths.Fixture("seed_cnn", s + ".png")).ToArray());
        var result = await PredictAsync("seed_cnn", form, 2);
        Assert.Equal(3, result.Predictions.Count);
        for (var i = 0; i < stems.Length; i++) AssertMatches(ReferenceCases.Get("seed_cnn", stems[i]), result.Predictions[i]);
    }

    [Fact]
    public async Task A_batched_tensor_gives_one_prediction_per_sample()
    {
        var a = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_mobilenet", "input0.tensor.npy")), long.MaxValue);
        var b = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_mobilenet", "input1.tensor.npy")), long.MaxValue);
        using var form = Http.TensorForm(Npy.Write([.. a.Data, .. b.Data], [2, .. a.Shape[1..]]));
        var result = await PredictAsync("mini_mobilenet", form, 10);
        AssertMatches(ReferenceCases.Get("mini_mobilenet", "input0"), result.Predictions[0]);
        AssertMatches(ReferenceCases.Get("mini_mobilenet", "input1"), result.Predictions[1]);
    }

    [Fact]
    public async Task TopK_limits_and_orders_the_scores_with_labels()
    {
        using var form = Http.ImageForm(TestPaths.Fixture("mini_resnet", "input0.png"));
        var result = await PredictAsync("mini_resnet", form, 3);
        var top = Assert.Single(result.Predictions).Top;
        Assert.Equal(3, top.Count);
        Assert.True(top[0].Score >= top[1].Score && top[1].Score >= top[2].Score);
        Assert.All(top, s => Assert.Equal($"class{s.Index}", s.Label));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1001")]
    [InlineData("many")]
    public async Task Invalid_topK_is_a_400(string topK)
    {
        using var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png"));
        var response = await Client.PostAsync($"/v1/models/seed_cnn/predict?topK={topK}", form);
        await Http.AssertProblemAsync(response, HttpStatusCode.BadRequest);
    }

    private async Task<PredictResponse> PredictAsync(string model, HttpContent form, int topK)
    {
        var response = await Client.PostAsync($"/v1/models/{model}/predict?topK={topK}", form);
        var result = await Http.ReadAsync<PredictResponse>(response);
        Assert.Equal(model, result.Model);
        return result;
    }

    internal static void AssertMatches(ReferenceCase reference, Prediction prediction)
    {
        Assert.Equal(reference.Target, prediction.Top[0].Index);
        foreach (var score in prediction.Top)
            Assert.True(Math.Abs(reference.Outputs[score.Index] - score.Score) <= Tolerance,
                $"{reference}: class {score.Index} scored {score.Score}, reference {reference.Outputs[score.Index]}");
    }
}
