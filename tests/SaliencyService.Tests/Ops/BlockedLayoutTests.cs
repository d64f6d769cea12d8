using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests.Ops;

/// <summary>
/// A small residual network (stem, max pool, a block, a strided block with a 1×1 shortcut, global
/// average pool, classifier) whose backward ONNX Runtime runs in its blocked (NCHWc) layout: the
/// gradients that arrive from a transposed convolution, the max pool or the classifier are taken
/// into it (Rectifier's blocked copy), so the residual sums and guided Relus fuse into the
/// backward's convolutions. Every convolution is ONNX Runtime's: at the network's 3×3 shapes
/// (272 channels at 7², 288 at 4²) and at the strided one (272 into 288 at 7²) the Winograd kernel
/// has lost this process's races (<see cref="WinogradRace"/>, kept for the process by shape), run
/// by sessions that cannot open it: a race timed on the host could go either way (under emulation
/// without AVX-512 the strided one did, and the scatter this test looks for was the kernel's).
/// </summary>
public sealed class BlockedLayoutTests
{
    private const int Narrow = 272, Wide = 288;

    public BlockedLayoutTests()
    {
        var kernelCannotRun = new WinogradRace(model => new InferenceSession(model.ToByteArray()));
        foreach (var (channels, side) in new[] { (Narrow, 7), (Wide, 4) })
            Assert.Equal(double.PositiveInfinity, kernelCannotRun.Race(channels, channels, side, side).Kernel2);
        var strided = kernelCannotRun.RaceStrided(Wide, Narrow, 7, 7);
        Assert.Equal((double.PositiveInfinity, double.PositiveInfinity), (strided.Kernel, strided.Transposed));
    }

    private static OnnxTestModel ResidualNetwork()
    {
        var seed = 20;
        // Weights that keep each layer's outputs about the size of its inputs.
        OnnxTestModel Weight(OnnxTestModel m, string name, params long[] shape)
        {
            var bound = MathF.Min(0.4f, 1.5f / MathF.Sqrt(shape.Skip(1).Aggregate(1L, (p, d) => p * d)));
            return m.Initializer(name, Parity.RandomInput([shape.Aggregate(1L, (p, d) => p * d)], seed++, -bound, bound), shape);
        }
        var model = new OnnxTestModel(13, [2, 3, 14, 14]);
        model = Weight(model, "w0", Narrow, 3, 3, 3);
        model = Weight(model, "w1", Narrow, Narrow, 3, 3);
        model = Weight(model, "w2", Narrow, Narrow, 3, 3);
        model = Weight(model, "w3", Wide, Narrow, 3, 3);
        model = Weight(model, "w4", Wide, Wide, 3, 3);
        model = Weight(model, "wd", Wide, Narrow, 1, 1);
        model = Weight(model, "fc", 5, Wide);
        return StridedResidualNetwork.Nodes(model);
    }

    [Fact]
    public void Gradients_match_float64_autograd_under_every_rule() =>
        Parity.CheckGradients(ResidualNetwork(), low: -1, high: 1);

    /// <summary>
    /// In the session ONNX Runtime optimises from the guided backward, no Relu runs on its own and
    /// no gate product reads a value reordered out of the blocked layout: each is fused into a
    /// convolution, or runs blocked. The strided block's two input gradients meet in the plain
    /// layout, in the engine's scatter of columns, which adds the shortcut's as its residual and
    /// gates by r2 (<see cref="BackwardGraph.FoldedRectifier"/>); the one sum left, the max pool's
    /// gradient, adds that scatter's output (the skip's gradient) to c1's input gradient.
    /// </summary>
    [Fact]
    public void Guided_backward_runs_in_the_blocked_layout()
    {
        TorchNativeLoader.EnsureLoaded();
        var builder = ResidualNetwork();
        var model = builder.Model();
        var folder = Directory.CreateTempSubdirectory("blocked-layout").FullName;
        List<ModelProto> sessions;
        try
        {
            using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
            var optimized = new List<string>();
            using var backprop = OrtBackprop.Create(model, mirror, builder.InputShape, batched: true, m =>
            {
                optimized.Add(Path.Combine(folder, $"{optimized.Count}.onnx"));
                return TestSessions.Open(m, optimized[^1]);
            });
            using var scope = NewDisposeScope();
            backprop.Run(zeros(builder.InputShape), -1, RectifierRule.GuidedBackprop);
            sessions = optimized.Select(OnnxFile.Load).ToList();
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }

        var guided = sessions.Single(m => m.Graph.Node.Any(n => n.Name.StartsWith(BackwardGraph.Prefix + "Relu", StringComparison.Ordinal)));
        var producers = guided.Graph.Node.SelectMany(n => n.Output.Select(o => (o, n.OpType))).ToDictionary(p => p.o, p => p.OpType);
        Assert.DoesNotContain(guided.Graph.Node, n => n.OpType == "Relu");
        var scatter = Assert.Single(guided.Graph.Node, n => n.OpType == NativeOps.Col2Im);
        Assert.Equal("ConvTranspose", producers.GetValueOrDefault(scatter.Input[1]));
        Assert.Equal("r2", scatter.Input[2]);
        var sum = Assert.Single(guided.Graph.Node, n => n.OpType is "Sum" or "Add");
        Assert.Contains(scatter.Output[0], sum.Input);
        var gates = guided.Graph.Node.Where(n => n.OpType == "Mul" && n.Name.StartsWith(BackwardGraph.Prefix, StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(gates);
        Assert.All(gates, g => Assert.All(g.Input, i => Assert.NotEqual("ReorderOutput", producers.GetValueOrDefault(i))));
    }
}
