using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// Input gradients computed by ONNX Runtime end to end: the served model's forward, with the
/// values the backward reads added as outputs, then the mirror's backward graph written for the
/// rectifier rule asked for (<see cref="GraphMirror.WriteBackward"/>) on them. ONNX Runtime reads and writes libtorch
/// tensors in place, so nothing is copied between the two sessions.
/// </summary>
public sealed class OrtBackprop : IDisposable
{
    /// <summary>
    /// The rule whose backward a full backprop builds at once: the default method's, and the one
    /// the import checks against float64 (<see cref="FloatTruth.Rule"/>). Other rules' backwards
    /// are built on first use.
    /// </summary>
    public const RectifierRule FirstRule = RectifierRule.GuidedBackprop;

    /// <summary>One rule's backward: its session and the values it reads, in its input order.</summary>
    private sealed record Backward(InferenceSession Session, string[] Inputs);

    private readonly InferenceSession _forward;
    private readonly bool _ownsForward;
    private readonly GraphMirror _mirror;
    private readonly string[] _recorded;
    private readonly Dictionary<string, TensorInfo> _shapes;
    private readonly Func<byte[], InferenceSession> _open;
    private readonly ConcurrentDictionary<RectifierRule, Lazy<Backward>> _backwards = new();
    private readonly Backward _first;

    private OrtBackprop(InferenceSession forward, bool ownsForward, GraphMirror mirror, string[] recorded, Dictionary<string, TensorInfo> shapes,
        string? layer, Func<byte[], InferenceSession> open, RectifierRule rule, Backward first)
    {
        (_forward, _ownsForward, _mirror, _recorded, _shapes, _open) = (forward, ownsForward, mirror, recorded, shapes, open);
        Layer = layer;
        _first = first;
        _backwards[rule] = new Lazy<Backward>(first);
    }

    /// <summary>The layer whose gradient <see cref="InputGradient"/> gives (and whose value <see cref="Forward"/> records); null: the input.</summary>
    public string? Layer { get; }

    /// <summary>The explained scores and the served output among the recorded values, [n, ...] flattened per sample.</summary>
    public ForwardResult Result(IReadOnlyDictionary<string, Tensor> recorded, long samples) =>
        new(recorded[_mirror.ScoreName].reshape(samples, -1), recorded[_mirror.OutputName].reshape(samples, -1));

    /// <summary>
    /// The shape and type of every value of the graph (−1: the batch dimension), as the backward
    /// was written for them: an import check hands them to the service's own build, which then
    /// need not run the model twice to learn them again.
    /// </summary>
    public IReadOnlyDictionary<string, TensorInfo> Shapes => _shapes;

    /// <summary>How many values the first backward reads.</summary>
    public int RecordedCount => _first.Inputs.Length;

    /// <param name="model">The served model.</param>
    /// <param name="sampleShape">The input's shape (its first, batch, dimension does not matter).</param>
    /// <param name="batched">Whether the model takes batches (its first input dimension is free).</param>
    /// <param name="open">Creates a session with the served session's options.</param>
    /// <exception cref="NotSupportedException">The backward cannot be written for this model.</exception>
    public static OrtBackprop Create(ModelProto model, GraphMirror mirror, long[] sampleShape, bool batched, Func<byte[], InferenceSession> open) =>
        Create(model, mirror, mirror.BatchShapes(sampleShape, batched), null, open, FirstRule);

    /// <summary>As above, for value shapes already known (<see cref="GraphMirror.BatchShapes(long[], bool)"/>'s, or an import check's <see cref="Shapes"/>).</summary>
    public static OrtBackprop Create(ModelProto model, GraphMirror mirror, IReadOnlyDictionary<string, TensorInfo> shapes, Func<byte[], InferenceSession> open) =>
        Create(model, mirror, new Dictionary<string, TensorInfo>(shapes, StringComparer.Ordinal), null, open, FirstRule);

    /// <summary>
    /// The same model's backward of true gradients stopped at <paramref name="layer"/>: its forward
    /// also records the layer, its <see cref="InputGradient"/> is ∂score/∂layer (Grad-CAM on ONNX
    /// Runtime). Where this backprop's forward records all it reads (a CNN's last rectifier
    /// output), that forward is shared, not built again.
    /// </summary>
    /// <exception cref="NotSupportedException">The backward to that layer cannot be written.</exception>
    public OrtBackprop ForLayer(ModelProto model, string layer, Func<byte[], InferenceSession> open) =>
        Create(model, _mirror, new Dictionary<string, TensorInfo>(_shapes, StringComparer.Ordinal), layer, open, RectifierRule.Gradient, this);

    private static OrtBackprop Create(ModelProto model, GraphMirror mirror, Dictionary<string, TensorInfo> shapes, string? layer,
        Func<byte[], InferenceSession> open, RectifierRule rule, OrtBackprop? full = null)
    {
        var (backwardModel, graph) = mirror.WriteBackward(shapes, rule, layer);
        // ONNX Runtime builds a session on one thread: the backward's is built beside the forward's.
        var openingBackward = Task.Run(() => open(backwardModel.ToByteArray()));
        InferenceSession? forward = null;
        try
        {
            foreach (var output in graph.MaxPoolIndices)
                shapes[BackwardGraph.IndicesOf(output)] = new TensorInfo(shapes[output].Shape, ScalarType.Int64);
            // Every rule's backward reads the same values (deconvnet's fewer), so the first one's are what the forward records.
            var recorded = graph.ForwardInputs.Where(n => n != mirror.InputName).Append(mirror.ScoreName).Append(mirror.OutputName)
                .Concat(layer is null ? [] : [layer]).Distinct().ToArray();
            if (full is null || !recorded.All(full._recorded.Contains))
            {
                var recording = model.Clone();
                foreach (var output in graph.MaxPoolIndices)
                    recording.Graph.Node.Single(n => n.OpType == "MaxPool" && n.Output[0] == output).Output.Add(BackwardGraph.IndicesOf(output));
                var outputs = recording.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
                foreach (var name in recorded.Where(n => !outputs.Contains(n)))
                    recording.Graph.Output.Add(BackwardGraph.ValueInfo(name, BackwardGraph.ElementType(shapes[name].Type), null));
                forward = open(recording.ToByteArray());
            }
            var first = new Backward(openingBackward.GetAwaiter().GetResult(), graph.ForwardInputs);
            return new OrtBackprop(forward ?? full!._forward, ownsForward: forward is not null, mirror, recorded, shapes, layer, open, rule, first);
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

    /// <summary>The backward written for <paramref name="rule"/>, built on its first use.</summary>
    private Backward BackwardFor(RectifierRule rule) =>
        _backwards.GetOrAdd(rule, r => new Lazy<Backward>(() =>
        {
            var (model, graph) = _mirror.WriteBackward(_shapes, r, Layer);
            var backward = new Backward(_open(model.ToByteArray()), graph.ForwardInputs);
            if (backward.Inputs.FirstOrDefault(n => n != _mirror.InputName && !_recorded.Contains(n)) is not { } missing) return backward;
            backward.Session.Dispose();
            throw new InvalidOperationException($"The {r} backward reads '{missing}', which the forward does not record.");
        })).Value;

    /// <summary>
    /// The served model's forward on <paramref name="input"/> ([n, ...], float32): the values the
    /// backward reads, the score and the output, by name. Call inside a dispose scope.
    /// </summary>
    /// <param name="releaseMemory">
    /// Hand the run's working memory back when it ends instead of keeping it in the session's arena
    /// (after the last batch of a request: a batch's is hundreds of MB, a sample's is kept for the next).
    /// </param>
    public Dictionary<string, Tensor> Forward(Tensor input, bool releaseMemory = false, CancellationToken cancellationToken = default)
    {
        var values = _recorded.ToDictionary(n => n, n => Allocate(n, input.shape[0]), StringComparer.Ordinal);
        Run(_forward, [_mirror.InputName], [input.contiguous()], _recorded, _recorded.Select(n => values[n]).ToArray(), releaseMemory, cancellationToken);
        return values;
    }

    /// <summary>∂score[target]/∂input (or ∂/∂<see cref="Layer"/>) for every sample, from the <see cref="Forward"/> of the same input.</summary>
    /// <param name="releaseMemory">As for <see cref="Forward"/>.</param>
    public Tensor InputGradient(Tensor input, IReadOnlyDictionary<string, Tensor> recorded, long target, RectifierRule rule,
        bool releaseMemory = false, CancellationToken cancellationToken = default)
    {
        var backward = BackwardFor(rule);
        var score = recorded[_mirror.ScoreName];
        var seed = zeros(input.shape[0], score.NumberOfElements / input.shape[0]);
        seed.select(1, target).fill_(1);
        var gradient = Layer is null ? empty(input.shape) : Allocate(Layer, input.shape[0]);
        string[] names = [.. backward.Inputs, BackwardGraph.Seed];
        Tensor[] values = [.. backward.Inputs.Select(n => n == _mirror.InputName ? input.contiguous() : recorded[n]), seed.reshape(score.shape)];
        Run(backward.Session, names, values, [BackwardGraph.InputGradient], [gradient], releaseMemory, cancellationToken);
        return gradient;
    }

    public void Dispose()
    {
        if (_ownsForward) _forward.Dispose();
        foreach (var backward in _backwards.Values.Where(b => b.IsValueCreated)) backward.Value.Session.Dispose();
    }

    private Tensor Allocate(string name, long batch) =>
        empty(_shapes[name].Shape.Select(d => d < 0 ? batch * _shapes[name].BatchFactor : d).ToArray(), _shapes[name].Type);

    private static void Run(InferenceSession session, string[] inputNames, Tensor[] inputs, string[] outputNames, Tensor[] outputs,
        bool releaseMemory, CancellationToken cancellationToken)
    {
        var values = new List<OrtValue>(inputs.Length + outputs.Length);
        try
        {
            values.AddRange(inputs.Concat(outputs).Select(Wrap));
            OnnxModel.Cancellable(runOptions =>
            {
                if (releaseMemory) runOptions.AddRunConfigEntry("memory.enable_memory_arena_shrinkage", "cpu:0");
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
    private static unsafe OrtValue Wrap(Tensor tensor)
    {
        var bytes = tensor.bytes;
        var address = (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes));
        var type = (TensorElementType)(int)BackwardGraph.ElementType(tensor.dtype);
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, tensor.shape, address, bytes.Length);
    }
}
