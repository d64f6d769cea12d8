using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace SaliencyService.Explain.Engine;

/// <summary>What one backprop pass gives: the forward's result, the layer's value (with a layer), the gradient (or its sum over the batch), the index explained.</summary>
public sealed record BackpropPass(ForwardResult Result, Tensor? Layer, Tensor Gradient, long Target);

/// <summary>
/// Input gradients computed by ONNX Runtime end to end: the served model's forward, then the
/// mirror's backward written for the rectifier rule asked for (<see cref="GraphMirror.WriteBackward"/>),
/// its seed chosen inside the graph (<see cref="BackwardGraph.Target"/>). Where the model's opset
/// allows (<see cref="BackwardMerge"/>) the two are one session per rule: the values the backward
/// reads stay in ONNX Runtime's own layout. Otherwise the forward records them as outputs into
/// libtorch tensors and the backward session reads them in place, nothing copied between the two.
/// </summary>
public sealed class OrtBackprop : IDisposable
{
    /// <summary>
    /// The rule whose pass is built at once: the default method's, and the one the import checks
    /// against float64 (<see cref="FloatTruth.Rule"/>). Other rules' are built on first use.
    /// </summary>
    public const RectifierRule FirstRule = RectifierRule.GuidedBackprop;

    /// <summary>One rule's sessions, the forward values its backward reads (merged: inside the session), and whether it sums the batch's gradients.</summary>
    private sealed record Pass(PassSessions Sessions, string[] Reads, bool Summed = false);

    /// <summary>Which pass: a rule's, per sample or summed over the batch (<see cref="BackwardGraph.SumsBeforeProducts"/>).</summary>
    private readonly record struct PassKind(RectifierRule Rule, bool Summed);

    private readonly ModelProto _model;
    private readonly GraphMirror _mirror;
    private readonly Dictionary<string, TensorInfo> _shapes;
    private readonly Func<ModelProto, InferenceSession> _open;
    /// <summary>Whether the sessions run on CPU (<see cref="GraphMirror.WriteBackward"/>'s onCpu).</summary>
    private readonly bool _onCpu;
    /// <summary>Which one-sample convolutions run as the Winograd kernel: raced on this host, or null for every one it may take.</summary>
    private readonly WinogradRace? _race;
    /// <summary>The recording forward that feeds every rule's backward; null where each rule's session is merged.</summary>
    private readonly InferenceSession? _forward;
    private readonly bool _ownsForward;
    /// <summary>What the forward hands out: merged, the score, output and layer; else also every value a backward reads.</summary>
    private readonly string[] _recorded;
    private readonly ConcurrentDictionary<PassKind, Lazy<Pass>> _passes = new();
    /// <summary>The rule whose pass was built with this backprop.</summary>
    private readonly RectifierRule _firstRule;
    /// <summary>The passes whose sessions ran batches since their arenas were last shrunk.</summary>
    private readonly ConcurrentDictionary<PassKind, bool> _batched = new();
    /// <summary>Keeps a release run off disposed sessions.</summary>
    private readonly Lock _lifetime = new();
    private bool _disposed;

    private OrtBackprop(ModelProto model, GraphMirror mirror, Dictionary<string, TensorInfo> shapes, string? layer, Func<ModelProto, InferenceSession> open, bool onCpu,
        WinogradRace? race, InferenceSession? forward, bool ownsForward, string[] recorded, RectifierRule rule, Pass first)
    {
        (_model, _mirror, _shapes, _open, _onCpu, _race, _forward, _ownsForward, _recorded) = (model, mirror, shapes, open, onCpu, race, forward, ownsForward, recorded);
        Layer = layer;
        _firstRule = rule;
        _passes[new PassKind(rule, false)] = new Lazy<Pass>(first);
    }

    /// <summary>The layer whose gradient a pass gives (and whose value it returns); null: the input.</summary>
    public string? Layer { get; }

    /// <summary>Whether each rule's forward and backward run as one session.</summary>
    public bool Merged => _forward is null;

    /// <summary>
    /// The shape and type of every value of the graph (−1: the batch dimension), as the backward
    /// was written for them: an import check hands them to the service's own build, which then
    /// need not run the model twice to learn them again.
    /// </summary>
    public IReadOnlyDictionary<string, TensorInfo> Shapes => _shapes;

    /// <summary>The model it was written for, as parsed (not to be changed: its passes are written from it).</summary>
    public ModelProto Model => _model;

    /// <summary>
    /// Whether the backward was written for inputs of <paramref name="shape"/>: any batch where the
    /// model takes batches, the probe's other sizes (a model with free image sizes takes others too).
    /// </summary>
    public bool Takes(long[] shape)
    {
        var written = _shapes[_mirror.InputName].Shape;
        return written.Length == shape.Length && written.Zip(shape).All(d => d.First < 0 || d.First == d.Second);
    }

    /// <summary>How many forward values the first rule's backward reads.</summary>
    public int RecordedCount => PassFor(new PassKind(_firstRule, false)).Reads.Length;

    /// <param name="model">The served model, kept to build other rules' passes.</param>
    /// <param name="sampleShape">The input's shape (its first, batch, dimension does not matter).</param>
    /// <param name="batched">Whether the model takes batches (its first input dimension is free).</param>
    /// <param name="open">Creates a session with the served session's options.</param>
    /// <param name="onCpu">Whether <paramref name="open"/>'s sessions run on CPU (<see cref="OnnxSessionFactory.RunsOnCpu"/>): only there may the backward use the engine's own kernels.</param>
    /// <param name="race">
    /// Whether a one-sample pass's convolutions run as the Winograd kernel only where it wins a race on
    /// this host (<see cref="WinogradRace"/>: the service's passes); without, every one it may take,
    /// the most rounding a pass can have (the isolated import check judges that one).
    /// </param>
    /// <exception cref="NotSupportedException">The backward cannot be written for this model.</exception>
    public static OrtBackprop Create(ModelProto model, GraphMirror mirror, long[] sampleShape, bool batched, Func<ModelProto, InferenceSession> open, bool onCpu = true,
        bool race = true) =>
        Create(model, mirror, mirror.BatchShapes(sampleShape, batched), open, onCpu, race);

    /// <summary>As above, for value shapes already known (<see cref="GraphMirror.BatchShapes(long[], bool)"/>'s, or an import check's <see cref="Shapes"/>).</summary>
    public static OrtBackprop Create(ModelProto model, GraphMirror mirror, IReadOnlyDictionary<string, TensorInfo> shapes, Func<ModelProto, InferenceSession> open,
        bool onCpu = true, bool race = true) =>
        Create(model, mirror, new Dictionary<string, TensorInfo>(shapes, StringComparer.Ordinal), null, open, onCpu, race ? new WinogradRace(open) : null, FirstRule);

    /// <summary>
    /// The same model's backward of true gradients stopped at <paramref name="layer"/>: a pass
    /// returns the layer's value and ∂score/∂layer (Grad-CAM on ONNX Runtime). Where the forward
    /// is a session of its own and records all the layer's backward reads (a CNN's last rectifier
    /// output), that forward is shared, not built again.
    /// </summary>
    /// <exception cref="NotSupportedException">The backward to that layer cannot be written.</exception>
    public OrtBackprop ForLayer(string layer) =>
        Create(_model, _mirror, new Dictionary<string, TensorInfo>(_shapes, StringComparer.Ordinal), layer, _open, _onCpu, _race, RectifierRule.Gradient, this);

    private static OrtBackprop Create(ModelProto model, GraphMirror mirror, Dictionary<string, TensorInfo> shapes, string? layer,
        Func<ModelProto, InferenceSession> open, bool onCpu, WinogradRace? race, RectifierRule rule, OrtBackprop? full = null)
    {
        var (backwardModel, graph) = mirror.WriteBackward(model, shapes, rule, layer, onCpu: onCpu, race: race);
        foreach (var output in graph.MaxPoolIndices)
            shapes[BackwardGraph.IndicesOf(output)] = new TensorInfo(shapes[output].Shape, ScalarType.Int64);
        // What a pass hands back from the forward: the scores, the served output and the layer.
        string[] fetched = [.. new[] { mirror.ScoreName, mirror.OutputName, layer }.OfType<string>().Distinct()];
        if (BackwardMerge.Allowed(model) && BackwardMerge.Fits(model, backwardModel)
            && BackwardMerge.Merge(model, backwardModel, graph, fetched, shapes) is var mergedModel && TryOpen(open, mergedModel) is { } merged)
            return new OrtBackprop(model, mirror, shapes, layer, open, onCpu, race, null, false, fetched, rule,
                new Pass(Sessions(open, mergedModel, onCpu, merged), graph.ForwardInputs));

        // ONNX Runtime builds a session on one thread: the backward's is built beside the forward's.
        var openingBackward = Task.Run(() => open(backwardModel));
        InferenceSession? forward = null;
        try
        {
            // Every rule's backward reads the same values (deconvnet's fewer), so the first one's are what the forward records.
            var recorded = graph.ForwardInputs.Where(n => n != mirror.InputName).Concat(fetched).Distinct().ToArray();
            var shared = full is { Merged: false } && recorded.All(full._recorded.Contains);
            if (!shared) forward = open(BackwardMerge.Recording(model, graph, recorded, shapes));
            var first = new Pass(Sessions(open, backwardModel, onCpu, openingBackward.GetAwaiter().GetResult()), graph.ForwardInputs);
            return shared
                ? new OrtBackprop(model, mirror, shapes, layer, open, onCpu, race, full!._forward, false, full._recorded, rule, first)
                : new OrtBackprop(model, mirror, shapes, layer, open, onCpu, race, forward, true, recorded, rule, first);
        }
        catch
        {
            forward?.Dispose();
            try
            {
                openingBackward.GetAwaiter().GetResult().Dispose();
            }
            catch (Exception)
            {
                // The backward's own failure: the one being thrown, or one after another's.
            }
            throw;
        }
    }

    /// <summary>
    /// A pass's sessions of <paramref name="graph"/>, <paramref name="opened"/> the first: off CPU one
    /// per batch size (<see cref="PassSessions"/>), the graph kept to open the others.
    /// </summary>
    private static PassSessions Sessions(Func<ModelProto, InferenceSession> open, ModelProto graph, bool onCpu, InferenceSession? opened = null)
    {
        var first = opened ?? open(graph);
        return onCpu ? new PassSessions(first) : PassSessions.PerBatchSize(first, () => open(graph));
    }

    /// <summary>The merged session, or null where ONNX Runtime refuses it (the separate sessions are tried next).</summary>
    private static InferenceSession? TryOpen(Func<ModelProto, InferenceSession> open, ModelProto merged)
    {
        try
        {
            return open(merged);
        }
        catch (OnnxRuntimeException)
        {
            return null;
        }
    }

    /// <summary>The pass of this kind, built on its first use.</summary>
    private Pass PassFor(PassKind kind) =>
        _passes.GetOrAdd(kind, k => new Lazy<Pass>(() => k.Summed ? SummedPass(k.Rule) : Build(k.Rule, summed: false)!)).Value;

    /// <summary>
    /// The rule's summed pass; the rule's own pass (its gradients summed after the run) where the
    /// sum moves no product, so that a session of its own would only hold memory, or where the
    /// summed graph cannot be built (an untrusted model at the backward's node limit).
    /// </summary>
    private Pass SummedPass(RectifierRule rule)
    {
        try
        {
            return Build(rule, summed: true) ?? PassFor(new PassKind(rule, false));
        }
        catch (Exception e) when (e is NotSupportedException or OnnxRuntimeException)
        {
            return PassFor(new PassKind(rule, false));
        }
    }

    /// <summary>The rule's backward written and opened; null for a summed one that sums before no product.</summary>
    private Pass? Build(RectifierRule rule, bool summed)
    {
        var (backward, graph) = _mirror.WriteBackward(_model, _shapes, rule, Layer, summed, _onCpu, _race);
        if (summed && !graph.SumsBeforeProducts) return null;
        if (Merged) return new Pass(Sessions(_open, BackwardMerge.Merge(_model, backward, graph, _recorded, _shapes), _onCpu), graph.ForwardInputs, summed);
        if (graph.ForwardInputs.FirstOrDefault(n => n != _mirror.InputName && !_recorded.Contains(n)) is { } missing)
            throw new InvalidOperationException($"The {rule} backward reads '{missing}', which the forward does not record.");
        return new Pass(Sessions(_open, backward, _onCpu), graph.ForwardInputs, summed);
    }

    /// <summary>
    /// The served model's forward alone on <paramref name="input"/> ([n, ...], float32), for a
    /// target chosen before any gradient (merged: the whole pass built first). Call inside a dispose scope.
    /// </summary>
    public ForwardResult Forward(Tensor input, CancellationToken cancellationToken = default) =>
        Merged ? Run(input, -1, _firstRule, cancellationToken: cancellationToken).Result
            : Result(Record(input, shrinkArena: false, cancellationToken), input.shape[0]);

    /// <summary>
    /// One pass on <paramref name="input"/> ([n, ...], float32): the forward, and ∂score[target]/∂input
    /// (or ∂/∂<see cref="Layer"/>) for every sample, or their sum ([1, ...]). Call inside a dispose scope.
    /// </summary>
    /// <param name="target">The index explained; −1 (or no index of the score): the first sample's top score.</param>
    /// <param name="summed">
    /// Whether only the sum of the samples' input gradients is wanted (integrated gradients,
    /// SmoothGrad): a batch's then runs the backward's last linear ops once, on the sum, where the
    /// model's batch dimension is free (<see cref="BackwardGraph.SumsBeforeProducts"/>).
    /// </param>
    /// <remarks>
    /// A batch's working memory (hundreds of MB) stays in the sessions' arenas for the next batch
    /// and the next batched request, and goes back once batched work pauses
    /// (<see cref="NativeHeap.TrimWhenBatchesPause(object, Action)"/>). Shrinking the arenas after
    /// each request instead cost a third of integrated gradients' time under glibc (resnet18: 1.6–1.8 s
    /// against 1.05–1.2 s), which then faulted the batch's pages in again.
    /// </remarks>
    public BackpropPass Run(Tensor input, long target, RectifierRule rule, bool summed = false, CancellationToken cancellationToken = default)
    {
        var kind = new PassKind(rule, summed && Layer is null && input.shape[0] > 1 && _shapes[_mirror.InputName].Shape[0] < 0);
        // Off CPU a batch's memory is in the device's arena, which the release does not shrink, and
        // its one-sample run would open a session of that size (PassSessions).
        if (input.shape[0] > 1 && _onCpu)
        {
            _batched[kind] = true;
            NativeHeap.TrimWhenBatchesPause(this, ReleaseBatchMemory);
        }
        var pass = Run(input, target, PassFor(kind), shrinkArenas: false, cancellationToken);
        return summed && pass.Gradient.shape[0] > 1 ? pass with { Gradient = pass.Gradient.sum([0], keepdim: true) } : pass;
    }

    private BackpropPass Run(Tensor input, long target, Pass pass, bool shrinkArenas, CancellationToken cancellationToken)
    {
        var samples = input.shape[0];
        var gradient = Layer is not null ? Allocate(Layer, samples) : empty(pass.Summed ? [1, .. input.shape[1..]] : input.shape);
        var chosen = empty(1, ScalarType.Int64);
        var targetIndex = tensor(new[] { target });
        Dictionary<string, Tensor> values;
        if (Merged)
        {
            values = AllocateRecorded(samples);
            Run(pass.Sessions.For(samples), [_mirror.InputName, BackwardGraph.Target], [input.contiguous(), targetIndex],
                [.. _recorded, BackwardGraph.InputGradient, BackwardGraph.Chosen], [.. _recorded.Select(n => values[n]), gradient, chosen],
                shrinkArenas, cancellationToken);
        }
        else
        {
            values = Record(input, shrinkArenas, cancellationToken);
            Run(pass.Sessions.For(samples), [.. pass.Reads, BackwardGraph.Target],
                [.. pass.Reads.Select(n => n == _mirror.InputName ? input.contiguous() : values[n]), targetIndex],
                [BackwardGraph.InputGradient, BackwardGraph.Chosen], [gradient, chosen], shrinkArenas, cancellationToken);
        }
        return new BackpropPass(Result(values, samples), Layer is null ? null : values[Layer], gradient, chosen.item<long>());
    }

    /// <summary>
    /// Hands back what batches left in the arenas of the passes that ran them. ONNX Runtime shrinks
    /// an arena only as a run ends, so each such rule runs one sample of zeros asking for it.
    /// </summary>
    private void ReleaseBatchMemory()
    {
        lock (_lifetime)
        {
            if (_disposed) return;
            var kinds = _batched.Keys.ToArray();
            foreach (var kind in kinds) _batched.TryRemove(kind, out _);
            // A summed kind may hold its rule's own pass (PassFor): each session shrinks once.
            foreach (var pass in kinds.Select(PassFor).Distinct())
            {
                using var scope = NewDisposeScope();
                Run(Allocate(_mirror.InputName, 1).zero_(), -1, pass, shrinkArenas: true, CancellationToken.None);
            }
        }
    }

    public void Dispose()
    {
        NativeHeap.Forget(this);
        lock (_lifetime)
        {
            _disposed = true;
            if (_ownsForward) _forward!.Dispose();
            // A summed kind may hold its rule's own pass (PassFor).
            foreach (var pass in _passes.Values.Where(p => p.IsValueCreated).Select(p => p.Value).Distinct()) pass.Sessions.Dispose();
        }
    }

    /// <summary>The explained scores and the served output among the forward's values, [n, ...] flattened per sample.</summary>
    private ForwardResult Result(IReadOnlyDictionary<string, Tensor> values, long samples) =>
        new(values[_mirror.ScoreName].reshape(samples, -1), values[_mirror.OutputName].reshape(samples, -1));

    /// <summary>The separate recording forward: every value it records, by name.</summary>
    private Dictionary<string, Tensor> Record(Tensor input, bool shrinkArena, CancellationToken cancellationToken)
    {
        var values = AllocateRecorded(input.shape[0]);
        Run(_forward!, [_mirror.InputName], [input.contiguous()], _recorded, _recorded.Select(n => values[n]).ToArray(), shrinkArena, cancellationToken);
        return values;
    }

    /// <summary>A tensor for each value the forward hands out, for a batch of <paramref name="batch"/>.</summary>
    private Dictionary<string, Tensor> AllocateRecorded(long batch) =>
        _recorded.ToDictionary(n => n, n => Allocate(n, batch), StringComparer.Ordinal);

    private Tensor Allocate(string name, long batch) =>
        empty(_shapes[name].Shape.Select(d => d < 0 ? batch * _shapes[name].BatchFactor : d).ToArray(), _shapes[name].Type);

    private static void Run(InferenceSession session, string[] inputNames, Tensor[] inputs, string[] outputNames, Tensor[] outputs,
        bool shrinkArena, CancellationToken cancellationToken)
    {
        var values = new List<OrtValue>(inputs.Length + outputs.Length);
        try
        {
            values.AddRange(inputs.Concat(outputs).Select(Wrap));
            OnnxModel.Cancellable(runOptions =>
            {
                if (shrinkArena) runOptions.AddRunConfigEntry("memory.enable_memory_arena_shrinkage", "cpu:0");
                session.Run(runOptions, inputNames, values.Take(inputs.Length).ToArray(), outputNames, values.Skip(inputs.Length).ToArray());
                return true;
            }, cancellationToken);
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    /// <summary>An ONNX Runtime view of a contiguous libtorch tensor's memory.</summary>
    internal static unsafe OrtValue Wrap(Tensor tensor)
    {
        var bytes = tensor.bytes;
        var address = (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
        var type = (TensorElementType)(int)BackwardGraph.ElementType(tensor.dtype);
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, tensor.shape, address, bytes.Length);
    }
}
