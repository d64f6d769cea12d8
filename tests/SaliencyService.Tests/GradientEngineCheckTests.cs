using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
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
    private static OnnxTestModel Cnn(float weightScale) => new OnnxTestModel(13, [1, 3, 8, 8])
        .Initializer("w", Parity.RandomInput([6 * 3 * 9], 11, -0.5f, 0.5f).Select(v => v * weightScale).ToArray(), 6, 3, 3, 3)
        .Initializer("fc", Parity.RandomInput([6 * 4], 12, -0.5f, 0.5f), 6, 4)
        .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c"], ["r"])
        .Node("GlobalAveragePool", ["r"], ["g"])
        .Node("Flatten", ["g"], ["f"])
        .Node("MatMul", ["f", "fc"], ["y"])
        .Output("y");

    [Theory]
    [InlineData(true, GradientEngines.OnnxRuntime)]
    [InlineData(false, GradientEngines.LibTorch)]
    public void An_engine_that_reproduces_float64_is_chosen(bool tryOnnxRuntime, string expected)
    {
        var model = Cnn(1).Model();
        var verdict = Choose(model, model, tryOnnxRuntime);
        using var backprop = verdict.Backprop;
        Assert.Equal(expected, verdict.Engine);
        Assert.Contains("float64", verdict.Reason);
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

    /// <summary>Judges engines built on <paramref name="engines"/>' mirror against the float64 truth of <paramref name="truth"/>.</summary>
    private static GradientEngineCheck.Verdict Choose(SaliencyService.Explain.Onnx.Proto.ModelProto truth,
        SaliencyService.Explain.Onnx.Proto.ModelProto engines, bool tryOnnxRuntime)
    {
        TorchNativeLoader.EnsureLoaded();
        using var mirror = GraphMirror.Build(engines, "x", "y").Mirror!;
        using var scope = NewDisposeScope();
        var probe = tensor(Parity.RandomInput([1, 3, 8, 8], 5, -1, 1), [1, 3, 8, 8]);
        using var floatTruth = FloatTruth.Start(truth, "x", "y", probe, batched: false);
        return GradientEngineCheck.Choose(truth, mirror, batched: false, tryOnnxRuntime, bytes => new InferenceSession(bytes), floatTruth, mirror.Shapes(probe.shape));
    }
}
