using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>A model with an operator the mirror lacks still imports and predicts; explain names the operator.</summary>
public sealed class ExplainUnsupportedTests : IDisposable
{
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task An_unsupported_operator_is_listed_and_explain_is_a_422_naming_it()
    {
        // TopK has no converter: ONNX Runtime runs it, the mirror cannot.
        var model = new OnnxTestModel(13, [1, 3, 8, 8])
            .Initializer("w", Parity.RandomInput([4 * 3 * 9], 1, -1, 1), 4, 3, 3, 3)
            .Initializer("k", [2L], 1)
            .Node("Conv", ["x", "w"], ["c"])
            .Node("Flatten", ["c"], ["f"])
            .Node("TopK", ["f", "k"], ["values", "indices"])
            .Output("values").Output("indices", TensorProto.Types.DataType.Int64);
        using var client = _factory.CreateClient();
        using var upload = Http.ModelForm(model.Bytes(), "topk");
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.PostAsync("/v1/models", upload));

        Assert.False(descriptor.Explain.Supported);
        Assert.Contains(descriptor.Explain.UnsupportedOperators, o => o.StartsWith("TopK"));
        Assert.Null(descriptor.Explain.ParityMaxAbsDiff);

        var tensor = Explain.Tensors.Npy.Write(Parity.RandomInput([192], 2, 0, 1), [1, 3, 8, 8]);
        using (var predict = Http.TensorForm(tensor))
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/models/topk/predict", predict)).StatusCode);
        using var explain = Http.TensorForm(tensor);
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models/topk/explain", explain), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("TopK", detail);
    }

    [Fact]
    public async Task A_model_whose_probe_run_fails_still_imports_and_predicts_but_is_not_explainable()
    {
        // Dynamic height and width, but a Reshape that only fits 8×8: the 224×224 probe fails.
        var model = new OnnxTestModel(13, [1, 3, 8, 8]).Initializer("shape", [1L, 192L], 2)
            .Node("Reshape", ["x", "shape"], ["y"]).Output("y").Model();
        foreach (var axis in new[] { 2, 3 })
        {
            var dim = model.Graph.Input[0].Type.TensorType.Shape.Dim[axis];
            dim.ClearValue();
            dim.DimParam = axis == 2 ? "h" : "w";
        }
        using var client = _factory.CreateClient();
        using var upload = Http.ModelForm(Google.Protobuf.MessageExtensions.ToByteArray(model), "probe-fails");
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.PostAsync("/v1/models", upload));
        Assert.False(descriptor.Explain.Supported);
        Assert.Contains("probe", descriptor.Explain.Reason);

        using var predict = Http.TensorForm(Explain.Tensors.Npy.Write(new float[192], [1, 3, 8, 8]));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/models/probe-fails/predict", predict)).StatusCode);
    }

    [Theory]
    [InlineData(new long[] { 2, 3, 8, 8 })] // an export traced with a batch of two
    [InlineData(new long[] { 3, 8, 8 })]    // no batch dimension: its first is taken as one
    public async Task A_model_that_takes_a_fixed_batch_of_several_predicts_them_and_says_why_it_cannot_explain_one(long[] shape)
    {
        var count = (int)shape.Aggregate(1L, (a, b) => a * b);
        var model = new OnnxTestModel(13, shape).Node("Relu", ["x"], ["y"]).Output("y");
        using var client = _factory.CreateClient();
        using var upload = Http.ModelForm(model.Bytes(), "fixed-batch");
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.PostAsync("/v1/models", upload));
        Assert.False(descriptor.Explain.Supported);
        Assert.Contains($"batches of exactly {shape[0]}", descriptor.Explain.Reason);

        var values = Parity.RandomInput([count], 3, -1, 1);
        using (var predict = Http.TensorForm(Explain.Tensors.Npy.Write(values, shape)))
        {
            var answer = await Http.ReadAsync<PredictResponse>(await client.PostAsync("/v1/models/fixed-batch/predict?topK=1", predict));
            Assert.Equal((int)shape[0], answer.Predictions.Count);
            var perSample = count / (int)shape[0];
            for (var s = 0; s < shape[0]; s++)
                Assert.Equal(values.Skip(s * perSample).Take(perSample).Max(v => Math.Max(v, 0)), answer.Predictions[s].Top[0].Score);
        }
        using var explain = Http.TensorForm(Explain.Tensors.Npy.Write(values[..(count / (int)shape[0])], shape[1..]));
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models/fixed-batch/explain", explain), HttpStatusCode.UnprocessableEntity);
        Assert.Contains($"batches of exactly {shape[0]}", detail);
    }
}
