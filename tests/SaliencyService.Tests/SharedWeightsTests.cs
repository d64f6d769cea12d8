using System.Net;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A served model's weights moved into one file and read in place by every CPU session written
/// from the model (<see cref="SharedWeights"/>, <see cref="WeightsFile"/>), instead of a copy each.
/// </summary>
public sealed class SharedWeightsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("shared-weights").FullName;
    private readonly OnnxSessionFactory _sessions = new(new OnnxRuntimeOptions { ExecutionProvider = "cpu" });

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Sessions_read_the_weights_in_place_from_the_weights_file()
    {
        var weights = Enumerable.Range(0, 1024).Select(i => (float)i).ToArray();
        var model = Multiply(weights);
        using var shared = SharedWeights.Create(model, _folder)!;
        var file = Assert.Single(Directory.GetFiles(_folder));
        // A session of its own copy (the bytes as they are), and one of the service's.
        using var copied = TestSessions.Open(model);
        using var reading = _sessions.Create(model).Session;
        Assert.Equal(weights, Run(reading, 1024));

        // The weights changed in the file (a test's doing: the service never writes it again) reach the
        // session that reads them there (no copy of its own), not the one that copied them.
        var changed = weights.Select(w => -w).ToArray();
        using (var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            RandomAccess.Write(handle, System.Runtime.InteropServices.MemoryMarshal.AsBytes(changed.AsSpan()), 0);

        Assert.Equal(changed, Run(reading, 1024));
        Assert.Equal(weights, Run(copied, 1024));
    }

    [Fact]
    public void Shared_weights_compute_what_float64_computes()
    {
        // A Gemm's weight is packed for its kernel once, for every session sharing it.
        const int inputs = 64, outputs = 128;
        var w = Parity.RandomInput([outputs * inputs], 1, -1, 1);
        var b = Parity.RandomInput([outputs], 2, -1, 1);
        var x = Parity.RandomInput([inputs], 3, -1, 1);
        var model = new OnnxTestModel(13, [1, inputs])
            .Initializer("w", w, outputs, inputs)
            .Initializer("b", b, outputs)
            .Node("Gemm", ["x", "w", "b"], ["y"], OnnxTestModel.Int("transB", 1))
            .Output("y").Model();
        AsRawData(model);
        using var shared = SharedWeights.Create(model, _folder)!;
        Assert.All(model.Graph.Initializer.Where(t => t.Name == "w"), t => Assert.Equal(0, WeightsFileOffset(t) % 4096));

        var expected = Enumerable.Range(0, outputs).Select(o => b[o] + Enumerable.Range(0, inputs).Sum(i => (double)w[o * inputs + i] * x[i])).ToArray();
        for (var session = 0; session < 2; session++)
        {
            using var reading = _sessions.Create(model).Session;
            var y = Run(reading, x);
            Assert.All(Enumerable.Range(0, outputs), o => Assert.Equal(expected[o], y[o], 1e-5));
        }
    }

    [Fact]
    public void The_file_lasts_until_its_owner_and_every_session_reading_it_are_done()
    {
        var model = Multiply(new float[1024]);
        var shared = SharedWeights.Create(model, _folder)!;
        var file = Assert.Single(Directory.GetFiles(_folder));
        var reading = _sessions.Create(model).Session;

        shared.Dispose();
        Assert.True(File.Exists(file));
        using (var later = _sessions.Create(model).Session) Assert.Equal(new float[1024], Run(later, 1024)); // its own copy, read from the file
        reading.Dispose();
        Assert.False(File.Exists(file));
    }

    [Fact]
    public void Files_no_process_holds_are_removed_and_held_ones_kept()
    {
        using var held = SharedWeights.Create(Multiply(new float[1024]), _folder)!;
        var kept = Assert.Single(Directory.GetFiles(_folder));
        var stale = Path.Combine(_folder, "weights-0123.bin"); // a process's that ended without deleting it
        File.WriteAllBytes(stale, new byte[4096]);

        using var next = SharedWeights.Create(Multiply(new float[1024]), _folder)!;

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(kept));
        Assert.Equal(2, Directory.GetFiles(_folder).Length);
    }

    [Fact]
    public async Task A_served_model_shares_its_weights_until_it_is_deleted()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:OnnxRuntime:WeightsFolder"] = _folder });
        var client = factory.CreateClient();
        await Http.ImportFixtureAsync(client, "mini_resnet", "shared");
        var input = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input0.tensor.npy"));
        var map = await client.PostAsync("/v1/models/shared/explain?method=guided-backprop&format=npy", Http.TensorForm(input));
        Assert.Equal(HttpStatusCode.OK, map.StatusCode);
        ReferenceMaps.AssertMatches("mini_resnet", "input0.guided_backprop.npy", await map.Content.ReadAsByteArrayAsync());
        Assert.Single(Directory.GetFiles(_folder));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync("/v1/models/shared")).StatusCode);
        for (var waited = 0; Directory.GetFiles(_folder).Length > 0 && waited < 300; waited++) await Task.Delay(100);
        Assert.Empty(Directory.GetFiles(_folder));
    }

    private static ModelProto Multiply(float[] weights)
    {
        var model = new OnnxTestModel(13, [1, weights.Length]).Initializer("w", weights, 1, weights.Length).Node("Mul", ["x", "w"], ["y"]).Output("y").Model();
        AsRawData(model);
        return model;
    }

    /// <summary>The weights as exporters write them (raw data), which is what is moved.</summary>
    private static void AsRawData(ModelProto model)
    {
        foreach (var tensor in model.Graph.Initializer)
        {
            tensor.RawData = ByteString.CopyFrom(tensor.FloatData.SelectMany(BitConverter.GetBytes).ToArray());
            tensor.FloatData.Clear();
        }
    }

    private static long WeightsFileOffset(TensorProto tensor)
    {
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetMemoryManager<byte, System.Buffers.MemoryManager<byte>>(tensor.RawData.Memory, out _, out var offset, out _));
        return offset;
    }

    private static float[] Run(InferenceSession session, int length) => Run(session, Enumerable.Repeat(1f, length).ToArray());

    private static float[] Run(InferenceSession session, float[] x)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(x, [1, x.Length]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [session.InputNames[0]], [value], session.OutputNames);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
