using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;
using static TorchSharp.torch;

namespace SaliencyService.Tests;

/// <summary>
/// The contract every <see cref="IGradientEngine"/> keeps, run against each: one forward per call,
/// handed to the target callback; input gradients of a batch under every rectifier rule, their sum
/// over the batch, and a layer's gradient equal to libtorch autograd through a float64 mirror.
/// </summary>
public sealed class GradientEngineContractTests
{
    /// <summary>The test model, its input's batch dimension fixed at <paramref name="batch"/>.</summary>
    private static OnnxTestModel Model(long batch) => new OnnxTestModel(13, [batch, 3, 8, 8])
        .Initializer("w", Parity.RandomInput([5 * 3 * 9], 21, -0.5f, 0.5f), 5, 3, 3, 3)
        .Initializer("fc", Parity.RandomInput([5 * 4], 22, -0.5f, 0.5f), 5, 4)
        .Node("Conv", ["x", "w"], ["c"], Ints("pads", 1, 1, 1, 1))
        .Node("Relu", ["c"], ["r"])
        .Node("MaxPool", ["r"], ["p"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2))
        .Node("GlobalAveragePool", ["p"], ["g"])
        .Node("Flatten", ["g"], ["f"])
        .Node("MatMul", ["f", "fc"], ["y"])
        .Output("y");

    public static TheoryData<string> Engines => [GradientEngines.OnnxRuntime, GradientEngines.LibTorch];

    [Theory]
    [MemberData(nameof(Engines))]
    public void Input_gradients_follow_the_target_callback_and_equal_float64(string name)
    {
        using var fixture = new EngineFixture(name, batch: 2);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([2, 3, 8, 8], 3, -1, 1), [2, 3, 8, 8]);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            ForwardResult? seen = null;
            var gradient = fixture.Engine.InputGradients(input, new TargetChoice(-1, forward => { seen = forward; return forward.Scores[1].argmax().item<long>(); }),
                rule, CancellationToken.None);
            Assert.NotNull(seen);
            Assert.Equal([2L, 4L], seen!.Scores.shape);
            var target = seen.Scores[1].argmax().item<long>();
            Parity.AssertEqualsFloat64(fixture.Reference.InputGradients(input, target, rule), gradient, $"{name}, {rule}");
        }
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void Summed_input_gradients_equal_the_float64_sum_over_the_batch(string name)
    {
        using var fixture = new EngineFixture(name, batch: 3);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([3, 3, 8, 8], 6, -1, 1), [3, 3, 8, 8]);
        foreach (var rule in Enum.GetValues<RectifierRule>())
        {
            var sum = fixture.Engine.SummedInputGradients(input, TargetChoice.Fixed(2), rule, CancellationToken.None);
            Parity.AssertEqualsFloat64(fixture.Reference.InputGradients(input, 2, rule).sum([0], keepdim: true), sum, $"{name}, {rule}");
        }
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void A_layer_gradient_equals_float64(string name)
    {
        using var fixture = new EngineFixture(name, batch: 1);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([1, 3, 8, 8], 4, -1, 1), [1, 3, 8, 8]);
        var (activation, gradient) = fixture.Engine.LayerGradient(input, "r", new TargetChoice(-1, forward => forward.Scores[0].argmax().item<long>()), CancellationToken.None);

        using var grad = enable_grad();
        var values = fixture.Reference.Forward(input.to_type(ScalarType.Float64).requires_grad_(), RectifierRule.Gradient);
        var scores = values["y"].reshape(1, -1);
        var expected = autograd.grad([scores[0, scores[0].argmax().item<long>()]], [values["r"]])[0];
        Parity.AssertEqualsFloat64(values["r"].detach(), activation, $"{name}: activation");
        Parity.AssertEqualsFloat64(expected, gradient, $"{name}: gradient");
    }

    /// <summary>Each engine, and ONNX Runtime's with a layer's backward warmed (its forward then runs as that layer's pass).</summary>
    public static TheoryData<string, bool> ForwardCases => new() { { GradientEngines.OnnxRuntime, false }, { GradientEngines.OnnxRuntime, true }, { GradientEngines.LibTorch, false } };

    [Theory]
    [MemberData(nameof(ForwardCases))]
    public void The_forward_gives_the_scores_and_outputs_of_every_sample(string name, bool layerWarmed)
    {
        using var fixture = new EngineFixture(name, batch: 2, layerWarmed ? "r" : null);
        using var scope = NewDisposeScope();
        var input = tensor(Parity.RandomInput([2, 3, 8, 8], 5, -1, 1), [2, 3, 8, 8]);
        var forward = fixture.Engine.Forward(input, CancellationToken.None);
        using var noGrad = no_grad();
        var expected = fixture.Reference.Forward(input.to_type(ScalarType.Float64), RectifierRule.Gradient)["y"];
        Parity.AssertEqualsFloat64(expected, forward.Scores, $"{name}: scores");
        Parity.AssertEqualsFloat64(expected, forward.Outputs, $"{name}: outputs");
    }

    /// <summary>One engine over the test model, and the float64 mirror that judges it.</summary>
    private sealed class EngineFixture : IDisposable
    {
        private readonly GraphMirror _mirror;

        /// <param name="warmedLayer">A layer whose backward ONNX Runtime's engine builds first (as the service does Grad-CAM's default layer's).</param>
        public EngineFixture(string name, long batch, string? warmedLayer = null)
        {
            TorchNativeLoader.EnsureLoaded();
            var model = Model(batch).Model();
            _mirror = GraphMirror.Build(model, "x", "y").Mirror!;
            Reference = GraphMirror.Build(model, "x", "y", ScalarType.Float64).Mirror!;
            var autograd = new AutogradEngine(_mirror);
            Engine = name == GradientEngines.LibTorch
                ? autograd
                : new OrtGradientEngine(Task.FromResult(OrtBackprop.Create(model, _mirror, [batch, 3, 8, 8], batched: false, TestSessions.Open)), autograd);
            Assert.Equal(name, Engine.Name);
            if (warmedLayer is not null && Engine is OrtGradientEngine ort)
            {
                ort.Warm(warmedLayer);
                ort.LayerBackprop(warmedLayer)?.Dispose();
            }
        }

        public IGradientEngine Engine { get; }
        public GraphMirror Reference { get; }

        public void Dispose()
        {
            Engine.Dispose();
            _mirror.Dispose();
            Reference.Dispose();
        }
    }
}
