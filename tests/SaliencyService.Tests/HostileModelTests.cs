using System.Net;
using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>Models built to break things are refused at import with 422, and nothing reaches the store.</summary>
public sealed class HostileModelTests : IDisposable
{
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    private static OnnxTestModel Relu() => new OnnxTestModel(13, [1, 3]).Node("Relu", ["x"], ["y"]).Output("y");

    /// <summary>Each model, and a word its refusal must give (the runtime's own reason, not just any text).</summary>
    public static IEnumerable<object[]> Models()
    {
        yield return ["a cycle", new OnnxTestModel(13, [1, 3]).Node("Add", ["x", "b"], ["a"]).Node("Relu", ["a"], ["b"]).Node("Relu", ["a"], ["y"]).Output("y").Bytes(), "ONNX Runtime cannot load"];
        yield return ["a missing input", new OnnxTestModel(13, [1, 3]).Node("Add", ["x", "nowhere"], ["y"]).Output("y").Bytes(), "nowhere"];
        yield return ["an op of an unknown domain", WithDomain(Relu().Model(), "evil.domain").ToByteArray(), "evil.domain"];
        yield return ["an unknown op", new OnnxTestModel(13, [1, 3]).Node("NoSuchOp", ["x"], ["y"]).Output("y").Bytes(), "NoSuchOp"];
        yield return ["absurd initializer dims", WithAbsurdInitializer(Relu().Model()).ToByteArray(), "ONNX Runtime cannot load"];
        yield return ["external data outside the folder", WithExternal(Relu().Model(), "../../../../etc/passwd").ToByteArray(), "ONNX Runtime cannot load"];
        yield return ["external data at an absolute path", WithExternal(Relu().Model(), "/etc/passwd").ToByteArray(), "ONNX Runtime cannot load"];
        yield return ["no graph", new ModelProto { IrVersion = 8 }.ToByteArray(), "ONNX Runtime cannot load"];
        // The engine's own kernels are registered only with the graphs the service writes: a model that
        // calls them is one of an unknown domain (NativeOpsTests has what each kernel refuses itself).
        // An input left empty there crashed the import check's child in ONNX Runtime's wrapper, before any check of ours ran.
        foreach (var (name, inputs) in new (string, string[])[] { ("MaxPoolGrad", ["x", ""]), ("Col2Im", ["x"]), ("DepthwiseCol2Im", ["x", "x"]),
                     ("SparseConvTranspose", ["x", "x"]), ("SampleSum", ["x"]), ("WinogradConv", ["x", "x", "", "x"]) })
            yield return [$"its own call of {name}", WithDomain(new OnnxTestModel(13, [1, 1, 4, 4]).Node(name, inputs, ["y"]).Output("y").Model(),
                NativeOps.Domain).ToByteArray(), NativeOps.Domain + ":" + name];
        yield return ["a ConstantOfShape of 10^12 x 10^12 elements", new OnnxTestModel(13, [1, 3])
            .Initializer("shape", [1_000_000_000_000L, 1_000_000_000_000L], 2)
            .Node("ConstantOfShape", ["shape"], ["huge"])
            .Node("ReduceSum", ["huge"], ["total"], Int("keepdims", 0))
            .Node("Add", ["x", "total"], ["y"]).Output("y").Bytes(), "ONNX Runtime cannot"];
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Is_refused_with_422_and_nothing_is_written(string what, byte[] onnx, string reason)
    {
        using var client = _factory.CreateClient();
        using var form = Http.ModelForm(onnx, "hostile");
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models", form), HttpStatusCode.UnprocessableEntity);
        Assert.True(detail.Contains(reason, StringComparison.OrdinalIgnoreCase), $"{what}: '{reason}' not in: {detail}");
        Assert.False(Directory.Exists(Path.Combine(_factory.Store, "hostile")));
        Assert.Empty(StagedUploads.In(_factory.Store));
    }

    private static ModelProto WithDomain(ModelProto model, string domain)
    {
        model.Graph.Node[0].Domain = domain;
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = 1 });
        return model;
    }

    private static ModelProto WithAbsurdInitializer(ModelProto model)
    {
        var huge = new TensorProto { Name = "huge", DataType = (int)TensorProto.Types.DataType.Float };
        huge.Dims.AddRange([1_000_000_000, 1_000_000_000]);
        model.Graph.Initializer.Add(huge);
        model.Graph.Node[0].Input.Add("huge");
        model.Graph.Node[0].OpType = "Add";
        return model;
    }

    private static ModelProto WithExternal(ModelProto model, string location)
    {
        var weights = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
        weights.Dims.Add(3);
        weights.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        weights.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = "12" });
        model.Graph.Initializer.Add(weights);
        model.Graph.Node[0].OpType = "Add";
        model.Graph.Node[0].Input.Add("w");
        return model;
    }
}
