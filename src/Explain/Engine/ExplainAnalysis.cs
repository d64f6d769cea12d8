using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// Runs at import: rebuilds the model as a mirror, checks on a probe input that the mirror computes
/// what ONNX Runtime computes and which engine computes its gradients right, and describes the
/// result for the model descriptor.
/// </summary>
public sealed class ExplainAnalysis
{
    private readonly ExplainOptions _options;
    private readonly OnnxSessionFactory _sessions;
    private readonly Lazy<(bool Loaded, string Status)> _engine;

    public ExplainOptions Options => _options;

    /// <summary>Only the verdict matters (the isolated import check): nothing is built for serving beyond what the checks need.</summary>
    public bool CheckOnly { get; init; }

    /// <summary>
    /// Told when a check has opened the ONNX Runtime backward it is about to judge: the isolated
    /// check (<see cref="ImportCheck"/>) tells the service, which prepares the same meanwhile
    /// (<see cref="Prepare"/>), as a crash there would have ended the child first.
    /// </summary>
    public Action<BackwardPlan>? BackwardOpened { get; init; }

    public ExplainAnalysis(ExplainOptions options, OnnxSessionFactory sessions)
    {
        _options = options;
        _sessions = sessions;
        _engine = new Lazy<(bool, string)>(LoadEngine);
    }

    /// <summary>Whether libtorch is usable here, and how it was loaded or why not (for the start-up log).</summary>
    public (bool Loaded, string Status) Engine => _engine.Value;

    /// <summary>
    /// Checks the model and builds what explains it: the mirror must compute what ONNX Runtime
    /// computes on a probe input, and a gradient engine must reproduce float64 autograd there
    /// (<see cref="GradientEngineCheck"/>).
    /// </summary>
    /// <param name="verdict">
    /// The descriptor an isolated check (<see cref="ImportCheck"/>) already made for this file:
    /// then nothing is probed again, only built as it says.
    /// </param>
    /// <param name="probe">The served model's run on the probe, where the caller made it already.</param>
    /// <param name="shapes">With a verdict for ONNX Runtime's backward, the value shapes the check wrote it for (<see cref="OrtBackprop.Shapes"/>), if it says.</param>
    public (ModelExplainer? Explainer, ExplainDescriptor Descriptor) Analyse(string modelPath, OnnxModel onnx, Preprocessing preprocessing,
        string outputName, ExplainDescriptor? verdict = null, ProbeRun? probe = null, IReadOnlyDictionary<string, TensorInfo>? shapes = null) =>
        Analyse(Task.FromResult(ModelFileLoad.Parse(modelPath, mapped: false)), onnx, preprocessing, outputName, verdict, probe, shapes);

    /// <summary>As above, for the model file parsed (<see cref="OnnxFile.Load"/>), or being parsed, by the caller.</summary>
    /// <param name="prepared">
    /// The mirror and backward being built ahead of <paramref name="verdict"/> (<see cref="Prepare"/>):
    /// served where the verdict is ONNX Runtime's backward for the same plan, disposed otherwise.
    /// Served, the model is answered for once its mirror is built; the backward's session is built
    /// from then on, and a map asked for meanwhile waits for it.
    /// </param>
    public (ModelExplainer? Explainer, ExplainDescriptor Descriptor) Analyse(Task<Onnx.Proto.ModelProto> parsed, OnnxModel onnx, Preprocessing preprocessing,
        string outputName, ExplainDescriptor? verdict = null, ProbeRun? probe = null, IReadOnlyDictionary<string, TensorInfo>? shapes = null,
        PreparedBackward? prepared = null)
    {
        var batchSize = onnx.Inputs.First(i => i.Name == preprocessing.Input).Shape.FirstOrDefault(1);
        var batched = batchSize < 0;
        var maxBatch = batchSize > 0 ? (int)batchSize : _options.MaxBatch;
        if (Adopt(prepared, verdict, preprocessing.Input, outputName, shapes) is { } adopted)
            return (Explainer(adopted, verdict!.Layers, verdict.DefaultLayer, prepared!.Backprop, maxBatch), verdict);
        if (!Engine.Loaded) return (null, NotSupported([], Engine.Status));
        if (verdict is { Supported: false }) return (null, verdict);

        var model = parsed.GetAwaiter().GetResult();
        FloatTruth? truth = null;
        if (verdict is null)
        {
            try
            {
                probe ??= ModelProbe.Run(onnx, preprocessing, outputName);
                // The checks' longest step, started first: it builds its own float64 mirror.
                using var start = NewDisposeScope();
                truth = FloatTruth.Start(model, preprocessing.Input, outputName, Tensors.TensorCopy.ToTensor(probe.Input), batched);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return (null, ProbeFailed(e));
            }
        }
        using var ownedTruth = truth;

        var build = GraphMirror.Build(model, preprocessing.Input, outputName);
        if (build.Mirror is not { } mirror)
            return (null, NotSupported(build.UnsupportedOperators, UnsupportedOperators));

        OrtBackprop? backprop = null;
        EarlyBackward? early = null;
        try
        {
            if (verdict is not null)
            {
                if (verdict.GradientEngine == GradientEngines.OnnxRuntime)
                    backprop = shapes is null
                        ? Backprop(model, mirror, mirror.BatchShapes(ModelProbe.Shape(onnx, preprocessing), batched))
                        : Backprop(model, mirror, shapes);
                return (Explainer(mirror, verdict.Layers, verdict.DefaultLayer, Built(backprop), maxBatch), verdict);
            }

            var (input, expected) = probe!;
            using var scope = NewDisposeScope();
            // Where the model takes batches, its backward is written for shapes the batch of two
            // tells: ONNX Runtime reads them while the truth's forward runs.
            var shapesOfTwo = batched && _options.OrtBackward ? OrtShapes(model, mirror, truth!.Input) : null;
            // Where ONNX Runtime infers the probe's shapes too, the backward is built while the truth's forward runs.
            var inferred = _options.OrtBackward ? InferredShapes(model, mirror, input.Shape) : null;
            early = inferred is null ? null : EarlyBackward.Start(mirror, truth!, inferred, shapesOfTwo, valueShapes => Backprop(model, mirror, valueShapes));
            // The truth's forward on the probe: the output for parity, the grids for Grad-CAM, the shapes for the backward.
            var (probeShapes, actual) = truth!.Forward.GetAwaiter().GetResult();
            if (inferred is not null && !SameShapes(inferred, probeShapes))
            {
                // ONNX Runtime's shape inference disagrees with its kernels (a ceil-mode MaxPool whose
                // last window would start in the padding: inferred, it is there; run, it is not).
                // What the forward computes decides: the backward is written for the truth's shapes.
                early?.Dispose();
                early = null;
                shapesOfTwo = null;
            }
            var parity = ModelProbe.Compare(expected.Data, actual);
            var (difference, scale) = parity;
            var layers = mirror.ActivationNames
                // One grid per sample: not the windows Swin folds into the batch dimension.
                .Where(name => probeShapes.TryGetValue(name, out var t) && is_floating_point(t.Type) && CamLayouts.Of(t.Shape) is not null && t.Shape[0] == input.Shape[0])
                .Select(name => new LayerDescriptor(name, probeShapes[name].Shape, CamLayouts.Of(probeShapes[name].Shape)!))
                .ToArray();
            var cnnLayers = layers.Where(l => l.Layout == CamLayouts.ChannelsFirst).Select(l => l.Name).ToHashSet();
            var defaultLayer = mirror.RectifierOutputs.LastOrDefault(cnnLayers.Contains) ?? LastInformativeLayer(mirror, truth.Probe, layers);

            var tolerance = Onnx.Float32Graph.IsFromHalfPrecision(model) ? Math.Max(_options.ParityTolerance, _options.HalfPrecisionParityTolerance) : _options.ParityTolerance;
            if (!ModelProbe.Agree(parity, tolerance))
            {
                early?.Dispose(); // before the mirror it is written from
                mirror.Dispose();
                return (null, new ExplainDescriptor(false, [], Finite(difference), null, [],
                    $"The mirror disagrees with ONNX Runtime on a probe input (max abs difference {difference:G3} at output scale {scale:G3})."));
            }
            // The import's probe passes leave freed native memory behind: handed back once imports pause.
            Torch.NativeHeap.TrimWhenBatchesPause();
            var chosen = GradientEngineCheck.Choose(mirror, _options.OrtBackward, truth,
                () => early?.Take() ?? Backprop(model, mirror, BackwardShapes(mirror, truth, probeShapes, shapesOfTwo)),
                opened => BackwardOpened?.Invoke(new BackwardPlan(preprocessing.Input, outputName, opened.Shapes.ToDictionary())));
            backprop = chosen.Backprop;
            if (chosen.Engine is null)
            {
                mirror.Dispose();
                return (null, new ExplainDescriptor(false, [], difference, null, [], chosen.Reason, null, chosen.Reason));
            }
            return (Explainer(mirror, layers, defaultLayer, Built(backprop), maxBatch),
                new ExplainDescriptor(true, [], difference, defaultLayer, layers, null, chosen.Engine, chosen.Reason));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever fails on the probe (the runtime or the mirror) makes the model unexplainable, never the import fail.
            backprop?.Dispose();
            early?.Dispose(); // before the mirror it is written from
            mirror.Dispose();
            return (null, ProbeFailed(e));
        }
    }

    /// <summary>
    /// Starts building, on another thread, the mirror that <paramref name="plan"/> says, for a
    /// verdict still to come (<see cref="Analyse(Task{Onnx.Proto.ModelProto}, OnnxModel, Preprocessing, string, ExplainDescriptor?, ProbeRun?, IReadOnlyDictionary{string, TensorInfo}?, PreparedBackward?)"/>);
    /// its ONNX Runtime backward, once the verdict serves them (<see cref="PreparedBackward"/>).
    /// </summary>
    public PreparedBackward Prepare(Task<Onnx.Proto.ModelProto> parsed, BackwardPlan plan)
    {
        var mirror = Task.Run(async () => GraphMirror.Build(await parsed, plan.Input, plan.Output).Mirror
                                          ?? throw new NotSupportedException(UnsupportedOperators));
        // (The mirror's build has awaited the parse.)
        return new PreparedBackward(plan, mirror, built => Backprop(parsed.Result, built, plan.Shapes));
    }

    /// <summary>
    /// The prepared mirror, where the verdict serves what was prepared and the mirror was built
    /// (its backward then starts building); otherwise what was prepared is disposed and null.
    /// </summary>
    private static GraphMirror? Adopt(PreparedBackward? prepared, ExplainDescriptor? verdict, string input, string output,
        IReadOnlyDictionary<string, TensorInfo>? shapes)
    {
        if (prepared is null) return null;
        try
        {
            if (verdict is { Supported: true, GradientEngine: GradientEngines.OnnxRuntime } && prepared.Plan.Matches(input, output, shapes))
                return prepared.Serve();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Built as the verdict says instead, which meets any failure again.
        }
        prepared.Dispose();
        return null;
    }

    private static Task<OrtBackprop>? Built(OrtBackprop? backprop) => backprop is null ? null : Task.FromResult(backprop);

    private const string UnsupportedOperators = "The model uses operators the explainer does not support.";

    private InferenceSession Open(Onnx.Proto.ModelProto model) => _sessions.Create(model).Session;

    /// <summary>
    /// ONNX Runtime's backward of the model, its sessions (and so its kernels) those of the served
    /// model's provider. The check's has every convolution the Winograd kernel may take, the most
    /// rounding the service's raced passes can have, and spends no time racing (its one-thread
    /// sessions would not time the service's passes anyway).
    /// </summary>
    private OrtBackprop Backprop(Onnx.Proto.ModelProto model, GraphMirror mirror, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        OrtBackprop.Create(model, mirror, shapes, Open, _sessions.RunsOnCpu, race: !CheckOnly);

    /// <summary>ONNX Runtime's shapes of the mirror's values on <paramref name="input"/> (<see cref="OrtValueShapes"/>): inferred where they can be, else from a run; null where it cannot tell them.</summary>
    private Dictionary<string, TensorInfo>? OrtShapes(Onnx.Proto.ModelProto model, GraphMirror mirror, Tensor input)
    {
        if (InferredShapes(model, mirror, input.shape) is { } inferred) return inferred;
        try
        {
            return OrtValueShapes.Run(model, [.. mirror.ActivationNames], mirror.InputName, input, mirror.FloatType, Open);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }

    /// <summary>The mirror's value shapes for <paramref name="inputShape"/> as ONNX Runtime infers them (<see cref="OrtValueShapes.Inferred"/>); null where it does not infer them all, or refuses the graph.</summary>
    private static Dictionary<string, TensorInfo>? InferredShapes(Onnx.Proto.ModelProto model, GraphMirror mirror, long[] inputShape)
    {
        try
        {
            return OrtValueShapes.Inferred(model, [.. mirror.ActivationNames], mirror.InputName, inputShape, mirror.FloatType, OnnxSessionFactory.Inspect);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null; // then a run tells them, or the truth's forward
        }
    }

    /// <summary>Whether every value shape ONNX Runtime inferred is the one the truth's forward computed.</summary>
    private static bool SameShapes(IReadOnlyDictionary<string, TensorInfo> inferred, IReadOnlyDictionary<string, TensorInfo> computed) =>
        inferred.All(p => !computed.TryGetValue(p.Key, out var c) || c.Shape.SequenceEqual(p.Value.Shape));

    /// <summary>
    /// ONNX Runtime's backward built on another thread while the truth's forward runs, where ONNX
    /// Runtime infers the probe's value shapes as it loads the graph (<see cref="OrtValueShapes.Inferred"/>)
    /// so the backward need not wait for that forward's; the check's critical path then runs its
    /// build beside the float64 pass. Disposed unless taken, once its build has ended: it is written
    /// from the mirror, which is freed only after that.
    /// </summary>
    private sealed class EarlyBackward : IDisposable
    {
        private readonly Task<OrtBackprop> _building;
        private bool _taken;

        private EarlyBackward(Task<OrtBackprop> building) => _building = building;

        /// <summary>The build started, or null where the model takes batches and the batch of two's shapes are not known (then the truth's forward tells them).</summary>
        public static EarlyBackward? Start(GraphMirror mirror, FloatTruth truth, IReadOnlyDictionary<string, TensorInfo> probe,
            IReadOnlyDictionary<string, TensorInfo>? shapesOfTwo, Func<IReadOnlyDictionary<string, TensorInfo>, OrtBackprop> build)
        {
            if (truth.Batched && shapesOfTwo is null) return null;
            return new EarlyBackward(Task.Run(() => build(BackwardShapes(mirror, truth, probe, shapesOfTwo))));
        }

        /// <summary>The backward, once built; what its build failed with otherwise.</summary>
        public OrtBackprop Take()
        {
            _taken = true;
            return _building.GetAwaiter().GetResult();
        }

        public void Dispose()
        {
            if (_taken) return;
            _taken = true;
            try
            {
                _building.GetAwaiter().GetResult().Dispose();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Its failure is not the check's: the build was never used.
            }
        }
    }

    /// <summary>
    /// The value shapes ONNX Runtime's backward is written for: the probe's (the truth's forward's,
    /// typed as the float32 mirror types them) and, where the model takes batches, −1 where they
    /// follow the batch, which the batch of two's tell: ONNX Runtime's, or the mirror's own forward's
    /// where those are missing or do not fit.
    /// </summary>
    /// <exception cref="NotSupportedException">A value follows the batch along several dimensions.</exception>
    private static Dictionary<string, TensorInfo> BackwardShapes(GraphMirror mirror, FloatTruth truth, IReadOnlyDictionary<string, TensorInfo> probe,
        IReadOnlyDictionary<string, TensorInfo>? ofTwo)
    {
        if (!truth.Batched) return GraphMirror.InPrecision(probe, mirror.FloatType);
        if (ofTwo is not null)
        {
            try
            {
                return GraphMirror.BatchShapes(probe, ofTwo);
            }
            catch (Exception e) when (e is NotSupportedException or KeyNotFoundException)
            {
                // ONNX Runtime's shapes and the mirror's differ: the mirror's own decide.
            }
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return GraphMirror.BatchShapes(probe, mirror.ShapesOf(mirror.Forward(truth.Input, RectifierRule.Gradient)));
    }

    /// <summary>
    /// Without rectifiers to point at one (transformers, SiLU networks): the last layer whose grid
    /// the top score's gradient reaches on the probe. ViT's last block output is not: its head
    /// reads the class token alone, so Grad-CAM there would be blank; the layers before it are.
    /// </summary>
    private static string? LastInformativeLayer(GraphMirror mirror, Tensor probe, IReadOnlyList<LayerDescriptor> layers)
    {
        if (layers.Count == 0) return null;
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var values = mirror.Forward(probe.detach().requires_grad_(), RectifierRule.Gradient);
        var score = values[mirror.ScoreName].reshape(-1).max();
        // A vision transformer's grid is its tokens (not its attention matrices or the patch
        // embedding); a model with channels-last stages (Swin, ConvNeXt) keeps its grid there and in
        // its feature maps (not in tokens reordered into windows).
        var transformer = layers.Any(l => l.Layout == CamLayouts.Tokens) && layers.All(l => l.Layout != CamLayouts.ChannelsLast);
        var grids = layers.Where(l => (l.Layout == CamLayouts.Tokens) == transformer).ToArray();
        var candidates = grids.Reverse().Where(l => values[l.Name].requires_grad).ToArray();
        if (candidates.Length == 0) return grids[^1].Name;
        var gradients = autograd.grad([score], candidates.Select(l => values[l.Name]).ToArray(), allow_unused: true);
        for (var i = 0; i < candidates.Length; i++)
            if (gradients[i] is { } g && !g.IsInvalid && CamLayouts.ToChannelsFirst(g, candidates[i].Layout).abs().sum().item<float>() > 0)
                return candidates[i].Name;
        return grids[^1].Name;
    }

    /// <summary>With a backprop on ONNX Runtime, Grad-CAM's layer gradients come from it too (the default layer's built in the background).</summary>
    private ModelExplainer Explainer(GraphMirror mirror, IReadOnlyList<LayerDescriptor> layers, string? defaultLayer, Task<OrtBackprop>? backprop,
        int maxBatch)
    {
        var autograd = new AutogradEngine(mirror);
        if (backprop is null) return new ModelExplainer(mirror, layers, defaultLayer, autograd, maxBatch);
        var ort = new OrtGradientEngine(backprop, autograd);
        if (defaultLayer is not null && !CheckOnly) ort.Warm(defaultLayer);
        return new ModelExplainer(mirror, layers, defaultLayer, ort, maxBatch, powerOfTwoBatches: !_sessions.RunsOnCpu);
    }

    private (bool, string) LoadEngine()
    {
        try
        {
            Torch.TorchNativeLoader.Configure(_options.OneDnnMaxIsa, _options.TorchThreads);
            var status = Torch.TorchNativeLoader.EnsureLoaded();
            return (true, $"{status}; {Torch.NativeHeap.Configure()}");
        }
        catch (Exception e) when (e is InvalidOperationException or DllNotFoundException or NotSupportedException or TypeInitializationException)
        {
            return (false, "The explain engine (libtorch) cannot load on this host: " + e.Message);
        }
    }

    private static double? Finite(double value) => double.IsFinite(value) ? value : null;

    private static ExplainDescriptor ProbeFailed(Exception e) =>
        NotSupported([], $"The probe run failed ({e.GetType().Name}): {e.Message.Split('\n')[0]}");

    private static ExplainDescriptor NotSupported(IReadOnlyList<string> unsupported, string reason) =>
        new(false, unsupported, null, null, [], reason);
}
