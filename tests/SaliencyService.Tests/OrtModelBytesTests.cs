using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A model handed to ONNX Runtime from memory (<see cref="OrtModelBytes"/>): weights mapped from its
/// file go as references into that file, and the session computes what a session on the file does.
/// </summary>
public sealed class OrtModelBytesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("ort-model-bytes").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Mapped_weights_are_read_from_their_file_and_compute_what_the_file_computes()
    {
        var path = TestPaths.Fixture("mini_resnet", "model.onnx");
        var (bytes, folder) = OrtModelBytes.Of(OnnxFile.Map(path));

        Assert.Equal(Path.GetDirectoryName(Path.GetFullPath(path)), folder);
        Assert.True(bytes.Length < new FileInfo(path).Length / 10, $"{bytes.Length} bytes still hold the weights");
        Assert.Equal(Outputs(new InferenceSession(path)), Outputs(Session(bytes, folder)));
    }

    [Fact]
    public void Copied_weights_stay_in_the_bytes()
    {
        var path = TestPaths.Fixture("mini_resnet", "model.onnx");
        var model = OnnxFile.Load(path);
        var (bytes, folder) = OrtModelBytes.Of(model);

        Assert.Null(folder);
        Assert.Equal(model.ToByteArray(), bytes);
    }

    [Fact]
    public void Weights_mapped_from_two_folders_compute_what_the_file_computes()
    {
        // External data in a subfolder: ONNX Runtime reads a session's references from one folder,
        // the first mapped weight's; the others' stay in the bytes.
        var whole = OnnxFile.Load(TestPaths.Fixture("mini_resnet", "model.onnx"));
        var moved = whole.Graph.Initializer.First(t => t.RawData.Length >= OrtModelBytes.InlineBelowBytes);
        Directory.CreateDirectory(Path.Combine(_folder, "weights"));
        File.WriteAllBytes(Path.Combine(_folder, "weights", "w.bin"), moved.RawData.ToByteArray());
        moved.RawData = ByteString.Empty;
        moved.DataLocation = TensorProto.Types.DataLocation.External;
        moved.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights/w.bin" });
        var path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, whole.ToByteArray());

        var (bytes, folder) = OrtModelBytes.Of(OnnxFile.Map(path));

        Assert.Equal(Path.Combine(_folder, "weights"), folder);
        Assert.Equal(Outputs(new InferenceSession(TestPaths.Fixture("mini_resnet", "model.onnx"))), Outputs(Session(bytes, folder)));
    }

    [Fact]
    public void Values_that_shape_inference_reads_stay_in_the_bytes()
    {
        // A Pad's pads as an initializer (as tf2onnx writes them): ONNX Runtime infers shapes as it
        // loads the graph and cannot read that from external data. The weights still go as references.
        var path = Path.Combine(_folder, "padded.onnx");
        var model = new Ops.OnnxTestModel(13, [1, 3, 6, 6])
            .Initializer("pads", [0L, 0, 0, 0, 0, 0, 1, 1], 8)
            .Initializer("w", Ops.Parity.RandomInput([64 * 3 * 9], 5, -1, 1), 64, 3, 3, 3)
            .Node("Pad", ["x", "pads"], ["p"])
            .Node("Conv", ["p", "w"], ["y"])
            .Output("y").Model();
        foreach (var tensor in model.Graph.Initializer) AsRawData(tensor); // as exporters write them, and as a mapped file shares them
        File.WriteAllBytes(path, model.ToByteArray());

        var (bytes, folder) = OrtModelBytes.Of(OnnxFile.Map(path));

        Assert.Equal(_folder, folder);
        var input = Ops.Parity.RandomInput([1, 3, 6, 6], 6, -1, 1);
        Assert.Equal(Run(new InferenceSession(path), input), Run(Session(bytes, folder), input));
    }

    private static void AsRawData(TensorProto tensor)
    {
        var bytes = tensor.FloatData.Count > 0
            ? tensor.FloatData.SelectMany(BitConverter.GetBytes).ToArray()
            : tensor.Int64Data.SelectMany(BitConverter.GetBytes).ToArray();
        tensor.FloatData.Clear();
        tensor.Int64Data.Clear();
        tensor.RawData = ByteString.CopyFrom(bytes);
    }

    private static float[] Run(InferenceSession session, float[] input)
    {
        using (session)
        {
            using var value = OrtValue.CreateTensorValueFromMemory(input, [1, 3, 6, 6]);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [session.InputNames[0]], [value], session.OutputNames);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
    }

    private static InferenceSession Session(byte[] bytes, string? folder)
    {
        using var options = new SessionOptions();
        if (folder is not null) options.AddSessionConfigEntry(OrtModelBytes.ExternalDataFolder, folder);
        return new InferenceSession(bytes, options);
    }

    private static float[] Outputs(InferenceSession session)
    {
        using (session)
        {
            var input = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy")), long.MaxValue);
            using var value = OrtValue.CreateTensorValueFromMemory(input.Data, input.Shape);
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [session.InputNames[0]], [value], session.OutputNames);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
    }
}
