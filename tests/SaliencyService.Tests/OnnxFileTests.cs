using SaliencyService.Api.Errors;
using Google.Protobuf;
using SaliencyService.Explain;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Tests.Ops;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>Reading models whose weights live in external data files.</summary>
public sealed class OnnxFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("onnx-external").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Save(string location, long offset = 0)
    {
        var model = new OnnxTestModel(13, [2, 3]).Initializer("w", [0f], 3).Node("Mul", ["x", "w"], ["y"]).Output("y").Model();
        var weights = model.Graph.Initializer[0];
        weights.FloatData.Clear();
        weights.DataLocation = TensorProto.Types.DataLocation.External;
        weights.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        weights.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
        weights.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = "12" });
        var path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    [Fact]
    public void External_weights_are_read_from_beside_the_model()
    {
        var path = Save("weights.bin", offset: 4);
        File.WriteAllBytes(Path.Combine(_folder, "weights.bin"), [0, 0, 0, 0, .. BitConverter.GetBytes(2f), .. BitConverter.GetBytes(-1f), .. BitConverter.GetBytes(0.5f)]);

        var build = GraphMirror.Build(OnnxFile.Load(path), "x", "y");
        using var mirror = build.Mirror!;
        using var scope = NewDisposeScope();
        var y = mirror.Forward(ones(2, 3), RectifierRule.Gradient)["y"];
        Assert.Equal([2f, -1f, 0.5f, 2f, -1f, 0.5f], y.data<float>().ToArray());
    }

    [Theory]
    [InlineData("../outside.bin")]
    [InlineData("/etc/passwd")]
    [InlineData("missing.bin")]
    public void External_paths_outside_the_folder_or_missing_are_refused(string location)
    {
        var path = Save(location);
        var e = Assert.Throws<UnsupportedModelException>(() => OnnxFile.Load(path));
        Assert.Equal(422, Problems.Describe(e).Status);
    }
}
