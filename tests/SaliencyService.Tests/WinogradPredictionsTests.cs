using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Predictions with the Winograd kernel (<see cref="WinogradPredictions"/>): the fixture ResNet's
/// session, swapped for one that runs its stride-1 3×3 convolutions as the kernel, gives PyTorch's
/// float64 logits for each sample alone and for both in a batch, while other threads predict; a
/// session that disagrees on the probe is not swapped in; and <see cref="OnnxModel.Replace"/> moves
/// runs to the new session.
/// </summary>
public sealed class WinogradPredictionsTests
{
    private const string Fixture = "mini_resnet";
    private static readonly string[] Stems = ["input0", "input1"];

    /// <summary>How far a logit may be from PyTorch's float64 one, as a share of the largest: ONNX Runtime's and the kernel's are within ~1e-7.</summary>
    private const double LogitTolerance = 1e-5;

    private static readonly OnnxSessionFactory Sessions = new(new OnnxRuntimeOptions { ExecutionProvider = "cpu" });

    [Fact]
    public async Task The_fixture_resnet_with_its_convolutions_by_winograd_predicts_pytorchs_float64_logits()
    {
        var (onnx, model, shapes, preprocessing, output) = Open();
        using var _ = onnx;
        using var stop = new CancellationTokenSource();
        // Predictions go on while the session is swapped: each gives the logits, on either session.
        var predicting = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            var runs = 0;
            for (; !stop.IsCancellationRequested || runs == 0; runs++) AssertLogits(onnx, preprocessing, output, Stems);
            return runs;
        })).ToArray();

        var outcome = WinogradPredictions.Build(onnx, model, shapes, preprocessing, output, Sessions, race: false);
        stop.Cancel();
        Assert.All(await Task.WhenAll(predicting), runs => Assert.True(runs > 0));
        if (!NativeOps.Available)
        {
            Assert.Equal(default, outcome);
            Assert.False(onnx.Replaced);
            return;
        }
        // b1.0, b1.3, b2.3 and b3.3, and b2.0 and b3.0 in the stride-2 form: not the stem (3 input channels).
        Assert.Equal(6, outcome.Kernels);
        Assert.True(onnx.Replaced);
        foreach (var stem in Stems) AssertLogits(onnx, preprocessing, output, [stem]);
        AssertLogits(onnx, preprocessing, output, Stems);
    }

    [Fact]
    public void A_session_that_disagrees_on_the_probe_is_not_swapped_in()
    {
        var (onnx, model, shapes, preprocessing, output) = Open();
        using var _ = onnx;
        if (!NativeOps.Available) return;
        // The first wide convolution's weights doubled: the graph the kernel's session runs is not the served one.
        var other = model.Clone();
        var weights = other.Graph.Initializer.Single(i => i.Name == other.Graph.Node.First(n => n.OpType == "Conv" && shapes[n.Input[0]].Shape[1] >= 16).Input[1]);
        var doubled = MemoryMarshal.Cast<byte, float>(weights.RawData.Span).ToArray().Select(w => 2 * w).ToArray();
        weights.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(doubled.AsSpan()));

        var refused = Assert.Throws<InvalidOperationException>(() => WinogradPredictions.Build(onnx, other, shapes, preprocessing, output, Sessions, race: false));
        Assert.Contains("disagrees with ONNX Runtime's on the probe", refused.Message);
        Assert.False(onnx.Replaced);
        AssertLogits(onnx, preprocessing, output, Stems);
    }

    [Fact]
    public void Replace_moves_runs_to_the_new_session_and_refuses_another_graph_or_a_disposed_model()
    {
        static InferenceSession Times(float factor, string output = "y") =>
            TestSessions.Open(new OnnxTestModel(13, [-1, 2]).Initializer("k", [factor], 1).Node("Mul", ["x", "k"], [output]).Output(output).Model());
        float[] Run(OnnxModel model) => (float[])model.Run([new NamedTensor("x", TensorElementType.Float, [1, 2], new float[] { 1, -3 })], ["y"])[0].Data;

        var onnx = new OnnxModel(Times(2), OnnxSessionFactory.Cpu);
        Assert.Equal([2f, -6f], Run(onnx));
        Assert.True(onnx.Replace(Times(3)));
        Assert.Equal([3f, -9f], Run(onnx));
        Assert.True(onnx.Replaced);

        using var otherOutput = Times(4, "z");
        Assert.Throws<ArgumentException>(() => onnx.Replace(otherOutput));
        Assert.Equal([3f, -9f], Run(onnx));

        onnx.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Run(onnx));
        // Refused after the dispose, the session stays the caller's: it still runs.
        var late = Times(5);
        Assert.False(onnx.Replace(late));
        using var caller = new OnnxModel(late, OnnxSessionFactory.Cpu);
        Assert.Equal([5f, -15f], Run(caller));
    }

    private static (OnnxModel Onnx, ModelProto Model, IReadOnlyDictionary<string, TensorInfo> Shapes, Preprocessing Preprocessing, string Output) Open()
    {
        TorchNativeLoader.EnsureLoaded();
        var path = TestPaths.Fixture(Fixture, "model.onnx");
        var onnx = new OnnxModel(Sessions.Create(path).Session, OnnxSessionFactory.Cpu);
        var preprocessing = PreprocessingResolver.Resolve(ModelInspection.ParseManifest(File.ReadAllText(TestPaths.Fixture(Fixture, "model.json"))), onnx.Inputs, onnx.Outputs);
        var model = OnnxFile.Load(path);
        var output = onnx.Outputs[0].Name;
        using var mirror = GraphMirror.Build(model, preprocessing.Input, output).Mirror!;
        return (onnx, model, mirror.BatchShapes(ModelProbe.Shape(onnx, preprocessing), batched: true), preprocessing, output);
    }

    /// <summary>The model's scores for the stems' inputs as one batch, each sample's against PyTorch's float64 logits.</summary>
    private static void AssertLogits(OnnxModel onnx, Preprocessing preprocessing, string output, string[] stems)
    {
        var inputs = stems.Select(stem => Npy.Read(File.ReadAllBytes(TestPaths.Fixture(Fixture, stem + ".tensor.npy")), long.MaxValue)).ToArray();
        var batch = new FloatTensor([.. inputs.SelectMany(i => i.Data)], [stems.Length, .. inputs[0].Shape[1..]]);
        var scores = onnx.Run(preprocessing.Input, batch, output);
        var classes = scores.Data.Length / stems.Length;
        for (var s = 0; s < stems.Length; s++)
        {
            var expected = ReferenceCases.Get(Fixture, stems[s]).Logits;
            Assert.Equal(expected.Length, classes);
            var scale = expected.Max(Math.Abs);
            for (var c = 0; c < classes; c++)
                Assert.True(Math.Abs(scores.Data[s * classes + c] - expected[c]) <= LogitTolerance * scale,
                    $"{stems[s]}, class {c}: {scores.Data[s * classes + c]} against PyTorch's float64 {expected[c]}");
        }
    }
}
