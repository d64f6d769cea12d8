using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// The import's choice of gradient engine is judged against float64 autograd, never one float32
/// engine against the other: an engine that computes the model's gradients is chosen, one that
/// computes something else is refused, even when the two float32 engines agree with each other.
/// </summary>
public sealed class GradientEngineCheckTests
{
    private static OnnxTestModel Cnn(float weightScale) => CnnScoring(weightScale, "y").Output("y");

    /// <summary>A small CNN whose scores are <paramref name="scores"/> (not yet an output).</summary>
    private static OnnxTestModel CnnScoring(float weightScale, string scores) => new OnnxTestModel(13, [-1, 3, 8, 8])
        .Initializer("w", Parity.RandomInput([6 * 3 * 9], 11, -0.5f, 0.5f).Select(v => v * weightScale).ToArray(), 6, 3, 3, 3)
        .Initializer("fc", Parity.RandomInput([6 * 4], 12, -0.5f, 0.5f), 6, 4)
        .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c"], ["r"])
        .Node("GlobalAveragePool", ["r"], ["g"])
        .Node("Flatten", ["g"], ["f"])
        .Node("MatMul", ["f", "fc"], [scores]);

    /// <summary>
    /// <see cref="Cnn"/> whose first sample's scores gain 0.5 × the other samples' (the batch's sum
    /// less its own): nothing at batch 1; in a batch the first sample's gradient is still its own,
    /// every other sample's 1.5× its own.
    /// </summary>
    private static ModelProto BatchMixingCnn() => CnnScoring(1, "s")
        .Initializer("batch_axis", [0L], 1)
        .Initializer("first", [0L], 1)
        .Initializer("second", [1L], 1)
        .Initializer("end", [long.MaxValue], 1)
        .Initializer("half", [0.5f], 1)
        .Node("ReduceSum", ["s", "batch_axis"], ["total"], Int("keepdims", 1))
        .Node("Sub", ["total", "s"], ["others"])
        .Node("Slice", ["others", "first", "second", "batch_axis"], ["others0"])
        .Node("Mul", ["others0", "half"], ["borrowed"])
        .Node("Slice", ["s", "first", "second", "batch_axis"], ["s0"])
        .Node("Add", ["s0", "borrowed"], ["y0"])
        .Node("Slice", ["s", "second", "end", "batch_axis"], ["rest"])
        .Node("Concat", ["y0", "rest"], ["y"], Int("axis", 0))
        .Output("y")
        .Model();

    [Theory]
    [InlineData(true, false, GradientEngines.OnnxRuntime)]
    [InlineData(false, false, GradientEngines.LibTorch)]
    [InlineData(true, true, GradientEngines.OnnxRuntime)]
    [InlineData(false, true, GradientEngines.LibTorch)]
    public void An_engine_that_reproduces_float64_is_chosen(bool tryOnnxRuntime, bool batched, string expected)
    {
        var model = Cnn(1).Model();
        var verdict = Choose(model, model, tryOnnxRuntime, batched);
        using var backprop = verdict.Backprop;
        Assert.Equal(expected, verdict.Engine);
        Assert.Contains("float64", verdict.Reason);
        Assert.Equal(batched, verdict.Reason.Contains("in a batch of two"));
        // The batch of two tells the batch dimension: the backward is written for any batch size.
        if (backprop is not null && batched) Assert.Equal([-1L, 3, 8, 8], backprop.Shapes["x"].Shape);
    }

    [Fact]
    public void Engines_that_compute_another_models_gradients_are_refused()
    {
        // Both float32 engines follow a mirror whose convolution weights are 1.5× the served
        // model's: they agree with each other and are both wrong.
        var served = Cnn(1).Model();
        var wrong = Cnn(1.5f).Model();
        var verdict = Choose(served, wrong, tryOnnxRuntime: true);
        Assert.Null(verdict.Backprop);
        Assert.Null(verdict.Engine);
        Assert.StartsWith("No gradient engine reproduces float64 autograd", verdict.Reason);
    }

    [Fact]
    public void An_engine_whose_samples_mix_in_a_batch_is_refused_where_the_model_takes_batches()
    {
        // libtorch autograd follows the mixing mirror (ONNX Runtime's backward is judged the same
        // way). The probe's own gradient is right either way: only the batch of two's second
        // sample, against its gradient alone, tells.
        var served = Cnn(1).Model();
        var mixing = BatchMixingCnn();
        var alone = Choose(served, mixing, tryOnnxRuntime: false, batched: false);
        Assert.Equal(GradientEngines.LibTorch, alone.Engine);

        var batched = Choose(served, mixing, tryOnnxRuntime: false, batched: true);
        Assert.Null(batched.Engine);
        Assert.StartsWith("No gradient engine reproduces float64 autograd", batched.Reason);
        Assert.Matches("within [0-9.eE+-]+ \\(relative L2\\) of float64 autograd on the probe; in a batch of two .* within 0\\.5 of its gradient alone", batched.Reason);
    }

    /// <summary>Judges engines built on <paramref name="engines"/>' mirror against the float64 truth of <paramref name="truth"/>.</summary>
    private static GradientEngineCheck.Verdict Choose(ModelProto truth, ModelProto engines, bool tryOnnxRuntime, bool batched = false)
    {
        TorchNativeLoader.EnsureLoaded();
        using var mirror = GraphMirror.Build(engines, "x", "y").Mirror!;
        using var scope = NewDisposeScope();
        var probe = tensor(Parity.RandomInput([1, 3, 8, 8], 5, -1, 1), [1, 3, 8, 8]);
        using var floatTruth = FloatTruth.Start(truth, "x", "y", probe, batched);
        return GradientEngineCheck.Choose(mirror, tryOnnxRuntime, floatTruth,
            () => OrtBackprop.Create(truth, mirror, mirror.BatchShapes([.. probe.shape], batched), TestSessions.Open));
    }
}
