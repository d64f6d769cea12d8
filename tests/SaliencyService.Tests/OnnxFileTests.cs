using SaliencyService.Api.Errors;
using Google.Protobuf;
using SaliencyService.Explain;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// Reading models: with their weights copied (<see cref="OnnxFile.Load"/>) or mapped
/// (<see cref="OnnxFile.Map"/>, its own walk of the protobuf wire format), from the file or from
/// external data files beside it. The protobuf library's parse of the whole file is the reference.
/// </summary>
public sealed class OnnxFileTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("onnx-external").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Save(string location, long offset = 0) => Save(location, offset.ToString(), "12");

    private string Save(string location, string offset, string length)
    {
        var model = new OnnxTestModel(13, [2, 3]).Initializer("w", [0f], 3).Node("Mul", ["x", "w"], ["y"]).Output("y").Model();
        var weights = model.Graph.Initializer[0];
        weights.FloatData.Clear();
        weights.DataLocation = TensorProto.Types.DataLocation.External;
        weights.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        weights.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset });
        weights.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length });
        var path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    public static TheoryData<bool> BothReads => [false, true];

    private static ModelProto Read(string path, bool mapped) => mapped ? OnnxFile.Map(path) : OnnxFile.Load(path);

    [Theory]
    [MemberData(nameof(BothReads))]
    public void External_weights_are_read_from_beside_the_model(bool mapped)
    {
        var path = Save("weights.bin", offset: 4);
        File.WriteAllBytes(Path.Combine(_folder, "weights.bin"), [0, 0, 0, 0, .. BitConverter.GetBytes(2f), .. BitConverter.GetBytes(-1f), .. BitConverter.GetBytes(0.5f)]);

        var build = GraphMirror.Build(Read(path, mapped), "x", "y");
        using var mirror = build.Mirror!;
        using var scope = NewDisposeScope();
        var y = mirror.Forward(ones(2, 3), RectifierRule.Gradient)["y"];
        Assert.Equal([2f, -1f, 0.5f, 2f, -1f, 0.5f], y.data<float>().ToArray());
    }

    [Theory]
    [InlineData("../outside.bin", false)]
    [InlineData("/etc/passwd", false)]
    [InlineData("missing.bin", false)]
    [InlineData("../outside.bin", true)]
    [InlineData("/etc/passwd", true)]
    [InlineData("missing.bin", true)]
    public void External_paths_outside_the_folder_or_missing_are_refused(string location, bool mapped)
    {
        var path = Save(location);
        var e = Assert.Throws<UnsupportedModelException>(() => Read(path, mapped));
        Assert.Equal(422, Problems.Describe(e).Status);
    }

    [Theory]
    [InlineData("four", "12", false)]
    [InlineData("-4", "12", false)]
    [InlineData("0", "99999999999999999999", false)]
    [InlineData("9223372036854775807", "12", false)]
    [InlineData("four", "12", true)]
    [InlineData("0", "99999999999999999999", true)]
    [InlineData("9223372036854775807", "12", true)]
    public void External_offsets_and_lengths_that_are_not_in_the_file_are_refused(string offset, string length, bool mapped)
    {
        var path = Save("weights.bin", offset, length);
        File.WriteAllBytes(Path.Combine(_folder, "weights.bin"), new byte[16]);
        var e = Assert.Throws<UnsupportedModelException>(() => Read(path, mapped));
        Assert.Contains("reads past the end", e.Message);
    }

    [Theory]
    [InlineData("seed_cnn")]
    [InlineData("mini_resnet")]
    [InlineData("mini_mobilenet")]
    public void A_mapped_model_is_the_model_the_protobuf_library_parses(string fixture)
    {
        var path = TestPaths.Fixture(fixture, "model.onnx");
        var expected = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Contains(expected.Graph.Initializer, t => t.RawData.Length > 0); // what the mapped read wraps in place

        Assert.Equal(expected, OnnxFile.Map(path));
        Assert.Equal(expected, OnnxFile.Load(path));
    }

    [Fact]
    public void Fields_that_repeat_merge_as_protobuf_merges_them()
    {
        // Concatenated messages merge: a scalar field's last value wins (a tensor's raw_data sent
        // twice), a repeated one appends (a graph sent twice: both graphs' initializers).
        var first = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(1, 2, 3, 4) };
        first.Dims.Add(1);
        var second = new TensorProto { RawData = ByteString.CopyFrom(5, 6, 7, 8) };
        var model = new OnnxTestModel(13, [1]).Node("Identity", ["x"], ["y"]).Output("y").Model();
        var bytes = Concat(model.ToByteArray(),
            Field(7, Field(5, Concat(first.ToByteArray(), second.ToByteArray()))),
            Field(7, Field(5, new TensorProto { Name = "v", RawData = ByteString.CopyFrom(9) }.ToByteArray())));
        var path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, bytes);

        var expected = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal([5, 6, 7, 8], expected.Graph.Initializer.Single(t => t.Name == "w").RawData.ToByteArray());
        Assert.Equal(expected, OnnxFile.Map(path));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(-7)] // cut inside the last weights
    public void A_cut_file_is_refused_as_the_protobuf_library_refuses_it(int keep)
    {
        var whole = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx"));
        var path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, whole[..(keep >= 0 ? keep : whole.Length + keep)]);

        var copied = Assert.Throws<UnsupportedModelException>(() => OnnxFile.Load(path));
        var mapped = Assert.Throws<UnsupportedModelException>(() => OnnxFile.Map(path));
        Assert.Equal(copied.Message, mapped.Message);
        if (Parsed(File.ReadAllBytes(path)).Error is { } refused) Assert.Equal(refused, copied.Message);
    }

    [Fact]
    public void A_loaded_model_keeps_its_weights_when_its_file_is_rewritten_in_place()
    {
        var whole = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx"));
        var path = Path.Combine(_folder, "model.onnx");
        File.WriteAllBytes(path, whole);
        var loaded = OnnxFile.Load(path);

        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write))
            file.Write(new byte[whole.Length]); // same length, every byte zero

        Assert.Equal(ModelProto.Parser.ParseFrom(whole), loaded);
    }

    /// <summary>The protobuf library's own parse of a whole file, or its refusal as <see cref="OnnxFile"/> words it.</summary>
    private static (ModelProto? Model, string? Error) Parsed(byte[] bytes)
    {
        try
        {
            return (ModelProto.Parser.ParseFrom(bytes), null);
        }
        catch (InvalidProtocolBufferException e)
        {
            return (null, "The file is not a valid ONNX protobuf: " + e.Message);
        }
    }

    [Fact]
    public void Corrupt_bytes_are_read_or_refused_as_the_protobuf_library_reads_or_refuses_them()
    {
        var whole = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx"));
        var path = Path.Combine(_folder, "model.onnx");
        var random = new Random(19);
        for (var trial = 0; trial < 300; trial++)
        {
            var bytes = whole.ToArray();
            // Mostly the graph's structure (the first kilobytes), where the walk of the wire format looks.
            for (var flips = random.Next(1, 4); flips > 0; flips--)
                bytes[random.Next(0, trial % 2 == 0 ? Math.Min(4096, bytes.Length) : bytes.Length)] = (byte)random.Next(256);
            File.WriteAllBytes(path, bytes);

            var copied = Outcome(() => OnnxFile.Load(path));
            var mapped = Outcome(() => OnnxFile.Map(path));
            Assert.True(copied.Model is null == mapped.Model is null, $"trial {trial}: copied {copied.Error}, mapped {mapped.Error}");
            Assert.Equal(copied.Model, mapped.Model);
            Assert.Equal(copied.Error, mapped.Error);
            // Against the protobuf library's own parse of the whole file (which may still lack a graph, or point outside).
            var library = Parsed(bytes);
            if (library.Error is not null) Assert.Equal(library.Error, copied.Error);
            else if (copied.Model is not null) Assert.Equal(library.Model, copied.Model);
        }
    }

    private static (ModelProto? Model, string? Error) Outcome(Func<ModelProto> read)
    {
        try
        {
            return (read(), null);
        }
        catch (UnsupportedModelException e)
        {
            return (null, e.Message);
        }
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>A length-delimited protobuf field.</summary>
    private static byte[] Field(int number, byte[] payload)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(number, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(payload));
        output.Flush();
        return stream.ToArray();
    }
}
