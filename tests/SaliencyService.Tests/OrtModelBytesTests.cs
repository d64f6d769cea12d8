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
        var moved = whole.Graph.Initializer.First(t => t.RawData.Length > 0);
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
