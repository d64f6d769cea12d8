using System.Net;
using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Models built to break things are refused at import with 422, and nothing reaches the store.</summary>
public sealed class HostileModelTests : IDisposable
{
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    private static OnnxTestModel Relu() => new OnnxTestModel(13, [1, 3]).Node("Relu", ["x"], ["y"]).Output("y");

    public static IEnumerable<object[]> Models()
    {
        yield return ["a cycle", new OnnxTestModel(13, [1, 3]).Node("Add", ["x", "b"], ["a"]).Node("Relu", ["a"], ["b"]).Node("Relu", ["a"], ["y"]).Output("y").Bytes()];
        yield return ["a missing input", new OnnxTestModel(13, [1, 3]).Node("Add", ["x", "nowhere"], ["y"]).Output("y").Bytes()];
        yield return ["an op of an unknown domain", WithDomain(Relu().Model(), "evil.domain").ToByteArray()];
        yield return ["an unknown op", new OnnxTestModel(13, [1, 3]).Node("NoSuchOp", ["x"], ["y"]).Output("y").Bytes()];
        yield return ["absurd initializer dims", WithAbsurdInitializer(Relu().Model()).ToByteArray()];
        yield return ["external data outside the folder", WithExternal(Relu().Model(), "../../../../etc/passwd").ToByteArray()];
        yield return ["external data at an absolute path", WithExternal(Relu().Model(), "/etc/passwd").ToByteArray()];
        yield return ["no graph", new ModelProto { IrVersion = 8 }.ToByteArray()];
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task Is_refused_with_422_and_nothing_is_written(string what, byte[] onnx)
    {
        using var client = _factory.CreateClient();
        using var form = Http.ModelForm(onnx, "hostile");
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models", form), HttpStatusCode.UnprocessableEntity);
        Assert.False(string.IsNullOrEmpty(detail), what);
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
