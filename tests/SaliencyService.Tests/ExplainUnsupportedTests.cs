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
}
