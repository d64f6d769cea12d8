using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Support;
using TorchSharp;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The service builds its ONNX Runtime backward while the isolated check still judges the child's
/// (<see cref="ExplainAnalysis.Prepare"/>): it serves that build only where the verdict is ONNX
/// Runtime's backward written for the same plan, and lets it go otherwise.
/// </summary>
public sealed class PreparedBackwardTests
{
    private const string Fixture = "mini_resnet";

    [Fact]
    public void A_plan_matches_only_the_same_names_and_every_value_shape()
    {
        Dictionary<string, TensorInfo> Shapes(long channels, long[]? values = null) => new()
        {
            ["x"] = new TensorInfo([-1, 3, 8, 8], torch.ScalarType.Float32),
            ["c"] = new TensorInfo([-1, channels, 8, 8], torch.ScalarType.Float32),
            ["s"] = new TensorInfo([2], torch.ScalarType.Int64, values ?? [-1, 4]),
        };
        var plan = new BackwardPlan("x", "y", Shapes(4));

        Assert.True(plan.Matches("x", "y", Shapes(4)));
        Assert.False(plan.Matches("x", "z", Shapes(4)));
        Assert.False(plan.Matches("input", "y", Shapes(4)));
        Assert.False(plan.Matches("x", "y", Shapes(5)));
        Assert.False(plan.Matches("x", "y", Shapes(4, [-1, 5])));
        Assert.False(plan.Matches("x", "y", Shapes(4).Where(e => e.Key != "s").ToDictionary()));
        Assert.False(plan.Matches("x", "y", new Dictionary<string, TensorInfo>(Shapes(4)) { ["extra"] = new([1], torch.ScalarType.Float32) }));
        Assert.False(plan.Matches("x", "y", null));
    }

    [Fact]
    public async Task The_service_serves_the_backward_it_prepared_from_the_checks_plan()
    {
        var (verdict, shapes, plan) = Check();
        Assert.Equal(GradientEngines.OnnxRuntime, verdict.GradientEngine);

        var (explainer, prepared, onnx) = Build(verdict, shapes, plan);
        using var owned = onnx;
        using var model = explainer;
        Assert.Same(await prepared.Mirror, model.Mirror);
        Assert.False(prepared.Disposed);
        AssertReferenceMaps(model);
    }

    [Fact]
    public async Task The_model_is_answered_for_before_its_backward_is_built_and_maps_wait_for_it()
    {
        var (verdict, shapes, plan) = Check();
        var analysis = new ExplainAnalysis(new ExplainOptions(), FixtureExplainers.Sessions);
        var parsed = Task.FromResult(OnnxFile.Load(ModelPath));
        var mirror = analysis.Prepare(parsed, plan).Mirror;
        // As Prepare's build, held back until the model has been answered for.
        var gate = new TaskCompletionSource();
        var held = new PreparedBackward(plan, mirror, built =>
        {
            gate.Task.Wait();
            return OrtBackprop.Create(parsed.Result, built, plan.Shapes, m => FixtureExplainers.Sessions.Create(m).Session);
        });
        var (session, provider) = FixtureExplainers.Sessions.Create(ModelPath);
        using var onnx = new OnnxModel(session, provider);

        // (Run aside: an Analyse that waited for the backward would wait for ever.)
        var analysing = Task.Run(() => analysis.Analyse(parsed, onnx, Preprocessing, onnx.Outputs[0].Name, verdict, null, shapes, held));
        if (await Task.WhenAny(analysing, Task.Delay(TimeSpan.FromMinutes(2))) != analysing)
        {
            gate.SetResult();
            Assert.Fail("The model was not answered for until its backward was built.");
        }
        var (explainer, _) = await analysing;
        using var model = explainer!;
        Assert.False(held.Backprop.IsCompleted);
        Assert.Equal(GradientEngines.OnnxRuntime, model.Engine.Name);

        var opening = Task.Run(() => gate.SetResult());
        AssertReferenceMaps(model);
        await opening;
    }

    [Fact]
    public void A_backward_that_fails_to_build_after_the_answer_fails_the_maps_with_its_reason()
    {
        var (verdict, shapes, plan) = Check();
        var analysis = new ExplainAnalysis(new ExplainOptions(), FixtureExplainers.Sessions);
        var parsed = Task.FromResult(OnnxFile.Load(ModelPath));
        var mirror = analysis.Prepare(parsed, plan).Mirror;
        var gate = new TaskCompletionSource();
        var failing = new PreparedBackward(plan, mirror, _ =>
        {
            gate.Task.Wait();
            throw new OutOfMemoryException("no room for the session");
        });
        var (session, provider) = FixtureExplainers.Sessions.Create(ModelPath);
        using var onnx = new OnnxModel(session, provider);

        var (explainer, _) = analysis.Analyse(parsed, onnx, Preprocessing, onnx.Outputs[0].Name, verdict, null, shapes, failing);
        using var model = explainer!;
        gate.SetResult();
        var c = ReferenceCases.All.First(c => c.Model == Fixture);
        var failed = Assert.Throws<InvalidOperationException>(() => FixtureExplainers.AssertReferenceMap(model, c, "guided-backprop", "guided_backprop", Preprocessing.Layout));
        Assert.Contains("no room for the session", failed.Message);
    }

    [Fact]
    public async Task A_verdict_for_another_engine_or_without_the_plans_shapes_lets_the_prepared_backward_go()
    {
        var (verdict, shapes, plan) = Check();
        var libtorch = verdict with { GradientEngine = GradientEngines.LibTorch };
        // Without shapes the service writes the backward for the probe's shape (a verdict stored before shapes were).
        foreach (var (told, toldShapes, engine) in new[] { (libtorch, shapes, GradientEngines.LibTorch), (verdict, null, GradientEngines.OnnxRuntime) })
        {
            var (explainer, prepared, onnx) = Build(told, toldShapes, plan);
            using var owned = onnx;
            using var model = explainer;
            Assert.True(prepared.Disposed);
            Assert.NotSame(await prepared.Mirror, model.Mirror);
            Assert.Equal(engine, model.Engine.Name);
            AssertReferenceMaps(model);
        }
    }

    [Fact]
    public async Task A_prepared_backward_let_go_while_it_builds_keeps_the_mirror_until_that_build_ends()
    {
        var (_, _, plan) = Check();
        var model = OnnxFile.Load(ModelPath);
        var mirror = Task.Run(() => GraphMirror.Build(model, plan.Input, plan.Output).Mirror!);
        var gate = new TaskCompletionSource();
        var building = new TaskCompletionSource();
        // As Prepare's: the backward is written from the built mirror (here once the gate opens).
        var prepared = new PreparedBackward(plan, mirror, built =>
        {
            building.SetResult();
            gate.Task.Wait();
            return OrtBackprop.Create(model, built, plan.Shapes, TestSessions.Open);
        });
        prepared.Serve();
        await building.Task.WaitAsync(TimeSpan.FromMinutes(2));

        prepared.Dispose(); // the import failed after its verdict served them
        await Task.Delay(TimeSpan.FromMilliseconds(200)); // room for a disposal that does not wait for the build
        gate.SetResult();

        // Written from a mirror freed under it, the build throws (or the process dies in libtorch).
        // (What it built, the disposal disposes.)
        await prepared.Backprop.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True(prepared.Disposed);
    }

    [Fact]
    public async Task A_prepared_backward_let_go_before_a_verdict_serves_it_is_never_built()
    {
        var (_, _, plan) = Check();
        var model = OnnxFile.Load(ModelPath);
        var mirror = Task.Run(() => GraphMirror.Build(model, plan.Input, plan.Output).Mirror!);
        var builds = 0;
        var prepared = new PreparedBackward(plan, mirror, _ =>
        {
            Interlocked.Increment(ref builds);
            throw new InvalidOperationException("not to be built");
        });
        await mirror;
        await Task.Delay(TimeSpan.FromMilliseconds(200)); // room for a build that does not wait to be served

        prepared.Dispose(); // the verdict chose another engine, or the import failed
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => prepared.Backprop.WaitAsync(TimeSpan.FromMinutes(2)));
        Assert.Equal(0, builds);
    }

    /// <summary>The check as the isolated child runs it: its verdict, the shapes it hands over, and the plan it told on opening its backward.</summary>
    private static (ExplainDescriptor Verdict, IReadOnlyDictionary<string, TensorInfo> Shapes, BackwardPlan Plan) Check()
    {
        BackwardPlan? told = null;
        var (session, provider) = FixtureExplainers.Sessions.Create(ModelPath);
        using var onnx = new OnnxModel(session, provider);
        var analysis = new ExplainAnalysis(new ExplainOptions(), FixtureExplainers.Sessions) { CheckOnly = true, BackwardOpened = plan => told = plan };
        var (explainer, verdict) = analysis.Analyse(ModelPath, onnx, Preprocessing, onnx.Outputs[0].Name);
        using var owned = explainer;
        var shapes = ((OrtGradientEngine)explainer!.Engine).Shapes.ToDictionary();
        Assert.NotNull(told);
        Assert.True(told.Matches(Preprocessing.Input, onnx.Outputs[0].Name, shapes));
        return (verdict, shapes, told);
    }

    /// <summary>The service's side: the plan prepared, then the model built as <paramref name="verdict"/> says.</summary>
    private static (ModelExplainer Explainer, PreparedBackward Prepared, OnnxModel Onnx) Build(ExplainDescriptor verdict,
        IReadOnlyDictionary<string, TensorInfo>? shapes, BackwardPlan plan)
    {
        var analysis = new ExplainAnalysis(new ExplainOptions(), FixtureExplainers.Sessions);
        var parsed = Task.FromResult(OnnxFile.Load(ModelPath));
        var preparing = analysis.Prepare(parsed, plan);
        var (session, provider) = FixtureExplainers.Sessions.Create(ModelPath);
        var onnx = new OnnxModel(session, provider);
        var (explainer, descriptor) = analysis.Analyse(parsed, onnx, Preprocessing, onnx.Outputs[0].Name, verdict, null, shapes, preparing);
        Assert.Same(verdict, descriptor);
        return (explainer!, preparing, onnx);
    }

    /// <summary>Guided backprop and the gradient on every case of the fixture, against PyTorch's float64 maps.</summary>
    private static void AssertReferenceMaps(ModelExplainer model)
    {
        foreach (var c in ReferenceCases.All.Where(c => c.Model == Fixture))
        foreach (var (method, reference) in new[] { ("guided-backprop", "guided_backprop"), ("gradient", "gradient") })
            FixtureExplainers.AssertReferenceMap(model, c, method, reference, Preprocessing.Layout);
    }

    private static string ModelPath => TestPaths.Fixture(Fixture, "model.onnx");

    private static Preprocessing Preprocessing => FixtureExplainers.Preprocessing(Fixture);
}
