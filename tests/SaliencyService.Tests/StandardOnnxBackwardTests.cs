using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// A backward for sessions that do not run on CPU (the CUDA provider's) is standard ONNX: the
/// engine's own kernels run on CPU only, so each would put copies to and from the GPU around it.
/// Judged by the float64 mirror, here on the CPU provider (docs/performance.md's GPU section
/// has the same graphs on an H200).
/// </summary>
public sealed class StandardOnnxBackwardTests
{
    private const int Classes = 5;

    /// <summary>A stem as ResNet's (7×7/2, max pool 3/2), a padded 3×3 of 16 channels (Winograd's) and a strided depthwise convolution.</summary>
    private static OnnxTestModel EveryKernelsCase() => new OnnxTestModel(13, [-1, 3, 16, 16])
        .Initializer("stem", Parity.RandomInput([16 * 3 * 49], 21, -0.3f, 0.3f), 16, 3, 7, 7)
        .Initializer("w", Parity.RandomInput([16 * 16 * 9], 22, -0.2f, 0.2f), 16, 16, 3, 3)
        .Initializer("dw", Parity.RandomInput([16 * 9], 23, -0.6f, 0.6f), 16, 1, 3, 3)
        .Initializer("fc", Parity.RandomInput([Classes * 16], 24, -0.5f, 0.5f), Classes, 16)
        .Node("Conv", ["x", "stem"], ["s"], Ints("strides", 2, 2), Ints("pads", 3, 3, 3, 3))
        .Node("Relu", ["s"], ["r1"])
        .Node("MaxPool", ["r1"], ["m"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1))
        .Node("Conv", ["m", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c"], ["r2"])
        .Node("Conv", ["r2", "dw"], ["d"], Int("group", 16), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["d"], ["r3"])
        .Node("GlobalAveragePool", ["r3"], ["g"])
        .Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1))
        .Output("y");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_backward_off_CPU_holds_no_engine_kernel(bool summed)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = EveryKernelsCase().Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        var shapes = mirror.BatchShapes([1, 3, 16, 16], batched: true);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var (standard, graph) = mirror.WriteBackward(model, shapes, rule, summed: summed, onCpu: false);
            Assert.False(graph.NativeKernels);
            Assert.DoesNotContain(standard.Graph.Node, n => n.Domain == NativeOps.Domain);
            Assert.DoesNotContain(standard.OpsetImport, o => o.Domain == NativeOps.Domain);
            // The same model on CPU uses them, so the case covers every kernel a backward may hold
            // (the stem's input gradient: scattered from the max pool's non-zero cells per sample, columns summed).
            var (onCpu, _) = mirror.WriteBackward(model, shapes, rule, summed: summed);
            var expected = new[] { NativeOps.MaxPoolGrad, NativeOps.DepthwiseCol2Im, NativeOps.WinogradConv }
                .Concat(summed ? [NativeOps.Col2Im, NativeOps.SampleSum] : [NativeOps.SparseConvTranspose]);
            Assert.All(expected, kernel => Assert.Equal(NativeOps.Available, onCpu.Graph.Node.Any(n => n.OpType == kernel && n.Domain == NativeOps.Domain)));
        }
    }

    /// <summary>
    /// Off CPU each batch size runs on a session of its own (the CUDA provider plans a session's
    /// convolutions again whenever a dimension changes): sizes taken in turn open one session each,
    /// and every pass still gives the float64 gradients. On CPU one session takes every size.
    /// </summary>
    [Theory]
    [InlineData(false, 3)]
    [InlineData(true, 1)]
    public void Off_CPU_each_batch_size_has_a_session_of_its_own(bool onCpu, int sessions)
    {
        TorchNativeLoader.EnsureLoaded();
        var model = EveryKernelsCase().Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
        var opened = 0;
        // The passes' sessions, not a Winograd race's (run once per process and shape, by whichever test meets the shape first).
        using var backprop = OrtBackprop.Create(model, mirror, [1, 3, 16, 16], batched: true,
            m => { if (m.Graph.Name != WinogradRace.GraphName) Interlocked.Increment(ref opened); return TestSessions.Open(m); }, onCpu);
        using var scope = NewDisposeScope();
        foreach (var samples in new long[] { 1, 4, 2, 4, 1 })
        {
            var input = tensor(Parity.RandomInput([samples * 3 * 16 * 16], 26 + (int)samples, -1, 1), [samples, 3, 16, 16]);
            Parity.AssertEqualsFloat64(reference.InputGradients(input, 1, RectifierRule.GuidedBackprop),
                backprop.Run(input, 1, RectifierRule.GuidedBackprop).Gradient, $"{samples} samples");
        }
        Assert.Equal(sessions, opened);
    }

    [Fact]
    public void A_backward_off_CPU_gives_the_float64_gradients() =>
        Parity.CheckPerSampleAndSummed(EveryKernelsCase().Model(), [4, 3, 16, 16], seed: 25, target: 2, onCpu: false);
}
