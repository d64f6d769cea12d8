using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// An ONNX graph rebuilt on libtorch: one kernel per node, run in topological order, with the
/// model's weights held as libtorch tensors for the mirror's lifetime. Nodes whose inputs are all
/// constant are evaluated once while building. Running it with a <see cref="RectifierRule"/> gives
/// a forward pass whose backward follows that rule at every rectifier.
/// </summary>
public sealed partial class GraphMirror : IDisposable
{
    private readonly Dictionary<string, Tensor> _constants;
    private readonly IReadOnlyList<Step> _steps;

    private readonly List<Tensor> _owned;

    private GraphMirror(string input, string output, string score, Dictionary<string, Tensor> constants, List<Tensor> owned,
        List<Step> steps, IReadOnlyList<string> rectifierOutputs, ScalarType floatType)
    {
        FloatType = floatType;
        _owned = owned;
        InputName = input;
        OutputName = output;
        ScoreName = score;
        _constants = constants;
        _steps = steps;
        RectifierOutputs = rectifierOutputs;
    }

    /// <summary>What floating-point values compute in (float32, or float64 for a reference).</summary>
    public ScalarType FloatType { get; }

    /// <summary>The graph input the image or tensor feeds.</summary>
    public string InputName { get; }

    /// <summary>The graph output that predict ranks.</summary>
    public string OutputName { get; }

    /// <summary>The tensor whose entries are explained: the output, or the input of a final Softmax/LogSoftmax.</summary>
    public string ScoreName { get; }

    /// <summary>Outputs of rectifier nodes, in the file's node order (Grad-CAM's default layer is the last 4-D one).</summary>
    public IReadOnlyList<string> RectifierOutputs { get; }

    /// <summary>Every tensor computed from the input, in the order the graph computes them.</summary>
    public IEnumerable<string> ActivationNames => _steps.SelectMany(s => s.Outputs).Where(o => o.Length > 0);

    /// <summary>
    /// Runs the graph on <paramref name="input"/> and returns every tensor by name. Call inside a
    /// dispose scope: the returned tensors belong to it.
    /// </summary>
    /// <param name="roundTo">
    /// Rounds every computed value to this type and back (float32 on a float64 mirror: float32's
    /// rounding, with no float32 kernel involved); its backward rounds the gradients likewise.
    /// </param>
    public Dictionary<string, Tensor> Forward(Tensor input, RectifierRule rule, CancellationToken cancellationToken = default,
        ScalarType? roundTo = null)
    {
        var values = new Dictionary<string, Tensor>(_constants, StringComparer.Ordinal) { [InputName] = input };
        Run(_steps, values, rule, cancellationToken, roundTo is { } type ? value => value.is_floating_point() ? value.to_type(type).to_type(FloatType) : value : null);
        return values;
    }

    /// <summary>Runs <paramref name="steps"/> in order over <paramref name="values"/>, adding each step's outputs (through <paramref name="round"/>).</summary>
    private static void Run(IReadOnlyList<Step> steps, Dictionary<string, Tensor> values, RectifierRule rule, CancellationToken cancellationToken,
        Func<Tensor, Tensor>? round = null)
    {
        foreach (var step in steps)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var inputs = new Tensor?[step.Inputs.Length];
            for (var i = 0; i < inputs.Length; i++)
                inputs[i] = step.Inputs[i].Length == 0 ? null : values[step.Inputs[i]];
            var outputs = step.Kernel(inputs, rule);
            for (var o = 0; o < step.Outputs.Length && o < outputs.Length; o++)
                if (step.Outputs[o].Length > 0)
                    values[step.Outputs[o]] = round is null ? outputs[o] : round(outputs[o]);
        }
    }

    /// <summary>
    /// ∂score[target]/∂input of every sample of <paramref name="inputs"/> ([n, ...]) under the
    /// rectifier rule, by libtorch autograd: samples are independent, so one backward of the summed
    /// scores gives them all. Call inside a dispose scope.
    /// </summary>
    /// <param name="roundTo">As for <see cref="Forward"/>.</param>
    public Tensor InputGradients(Tensor inputs, long target, RectifierRule rule, CancellationToken cancellationToken = default,
        ScalarType? roundTo = null) =>
        InputGradients(inputs, _ => target, rule, cancellationToken, roundTo);

    /// <summary>
    /// As above, the target chosen from the pass's own forward values (by name) before its
    /// backward: one forward resolves the target and serves the gradient.
    /// </summary>
    public Tensor InputGradients(Tensor inputs, Func<IReadOnlyDictionary<string, Tensor>, long> target, RectifierRule rule,
        CancellationToken cancellationToken = default, ScalarType? roundTo = null)
    {
        // The pass's activations die here, not with the caller's scope.
        using var pass = NewDisposeScope();
        using var grad = enable_grad();
        var x = InPrecision(inputs.detach(), FloatType).requires_grad_();
        var values = Forward(x, rule, cancellationToken, roundTo);
        var chosen = target(values);
        values[ScoreName].reshape(inputs.shape[0], -1).select(1, chosen).sum().backward();
        return x.grad!.detach().MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var tensor in _constants.Values.Concat(_owned)) tensor.Dispose();
        _constants.Clear();
        _owned.Clear();
    }

    /// <summary>
    /// Rebuilds <paramref name="model"/>. The result lists every unsupported operator (all of
    /// them, so a user sees the whole gap at once) instead of a mirror when there are any.
    /// </summary>
    /// <param name="inputName">The graph input that is explained (the others are not supported).</param>
    /// <param name="outputName">The graph output that is explained.</param>
    /// <param name="floatType">
    /// What floating-point values compute in: float32 as served, or float64 for a reference that no
    /// float32 kernel (oneDNN's included) takes part in.
    /// </param>
    public static MirrorBuild Build(ModelProto model, string inputName, string outputName, ScalarType floatType = ScalarType.Float32)
    {
        Torch.TorchNativeLoader.EnsureLoaded();
        var opset = OnnxFile.DefaultOpset(model);
        var graph = model.Graph;
        var constants = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var unsupported = new SortedSet<string>(StringComparer.Ordinal);
        var steps = new List<Step>();
        var rectifiers = new List<string>();
        var owned = new List<Tensor>();
        // Everything made while building (the readers' tensors, folding intermediates) dies with
        // this scope; only what Keep/Own detach from it outlives the build.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        try
        {
            foreach (var initializer in graph.Initializer)
                constants[initializer.Name] = Keep(TensorReader.ToTorch(initializer), floatType);

            var available = new HashSet<string>(constants.Keys, StringComparer.Ordinal) { inputName, "" };
            foreach (var extra in graph.Input.Where(i => !available.Contains(i.Name)))
                unsupported.Add($"graph input '{extra.Name}' (only single-input models are explained)");

            var build = new NodeBuild(opset, floatType, constants, owned, unsupported);
            foreach (var node in TopologicalOrder(NodesFor(graph, outputName), available))
                build.Add(node, steps, rectifiers);
        }
        catch (UnsupportedOperatorException e)
        {
            unsupported.Add(e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            unsupported.Add($"(graph): {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        }

        if (unsupported.Count > 0)
        {
            foreach (var tensor in constants.Values.Concat(owned)) tensor.Dispose();
            return new MirrorBuild(null, unsupported.ToArray());
        }
        var score = ScoreTensor(graph, outputName);
        // In the file's node order (the exporter's execution order), not the order the build ran
        // them in: Grad-CAM's default, the last rectifier, is then the one a framework runs last.
        var rectifierSet = rectifiers.ToHashSet(StringComparer.Ordinal);
        var inFileOrder = graph.Node.Where(n => n.Output.Count > 0 && rectifierSet.Contains(n.Output[0])).Select(n => n.Output[0]).ToList();
        return new MirrorBuild(new GraphMirror(inputName, outputName, score, constants, owned, steps, inFileOrder, floatType), []);
    }

    /// <summary>Softmax and LogSoftmax are skipped: the explained score is the pre-softmax logit.</summary>
    private static string ScoreTensor(GraphProto graph, string outputName)
    {
        var producer = graph.Node.LastOrDefault(n => n.Output.Contains(outputName));
        return producer?.OpType is "Softmax" or "LogSoftmax" ? producer.Input[0] : outputName;
    }

    /// <summary>
    /// The nodes the explained output depends on, in file order: another head's (an ArgMax of the
    /// class, a TopK, post-processing) is left to ONNX Runtime, so an operator there cannot keep
    /// the model from being explained.
    /// </summary>
    private static List<NodeProto> NodesFor(GraphProto graph, string outputName)
    {
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
            foreach (var output in node.Output.Where(o => o.Length > 0))
                producers.TryAdd(output, node);
        var needed = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<string>([outputName]);
        while (pending.TryPop(out var name))
            if (producers.TryGetValue(name, out var node) && needed.Add(node))
                foreach (var read in Reads(node)) pending.Push(read);
        return graph.Node.Where(needed.Contains).ToList();
    }

    /// <summary>
    /// Kahn's order, level by level and in file order within a level; a node whose inputs never
    /// become available makes the graph unsupported. Linear in the graph's size: an untrusted
    /// model may have hundreds of thousands of nodes in a chain.
    /// </summary>
    private static List<NodeProto> TopologicalOrder(IReadOnlyList<NodeProto> nodes, HashSet<string> available)
    {
        var reads = nodes.Select(n => Reads(n).Where(name => !available.Contains(name)).Distinct(StringComparer.Ordinal).ToArray()).ToArray();
        var waiting = reads.Select(r => r.Length).ToArray();
        var readers = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (var i = 0; i < nodes.Count; i++)
            foreach (var name in reads[i])
                (readers.TryGetValue(name, out var list) ? list : readers[name] = []).Add(i);
        var known = new HashSet<string>(available, StringComparer.Ordinal);
        var ordered = new List<NodeProto>(nodes.Count);
        var level = Enumerable.Range(0, nodes.Count).Where(i => waiting[i] == 0).ToList();
        while (level.Count > 0)
        {
            var next = new List<int>();
            foreach (var i in level)
            {
                ordered.Add(nodes[i]);
                foreach (var output in nodes[i].Output)
                    if (known.Add(output) && readers.TryGetValue(output, out var waitingFor))
                        next.AddRange(waitingFor.Where(j => --waiting[j] == 0));
            }
            next.Sort();
            level = next;
        }
        if (ordered.Count < nodes.Count)
        {
            var missing = Enumerable.Range(0, nodes.Count).Where(i => waiting[i] > 0).SelectMany(i => reads[i]).First(name => !known.Contains(name));
            throw new UnsupportedOperatorException("(graph)", 0, $"tensor '{missing}' is never produced (a cycle or a missing input)");
        }
        return ordered;
    }

    /// <summary>A handle of its own for a tensor the mirror keeps, outside every dispose scope.</summary>
    private static Tensor Keep(Tensor tensor, ScalarType floatType) => InPrecision(tensor.detach(), floatType).DetachFromDisposeScope();

    /// <summary>A floating-point tensor in <paramref name="floatType"/>; any other as it is.</summary>
    public static Tensor InPrecision(Tensor tensor, ScalarType floatType) =>
        tensor.is_floating_point() && tensor.dtype != floatType ? tensor.to_type(floatType) : tensor;

    private sealed record Step(string OpType, string[] Inputs, string[] Outputs, OpKernel Kernel, GradientRule? Gradient);
}

/// <summary>A built mirror, or the operators that kept it from being built.</summary>
public sealed record MirrorBuild(GraphMirror? Mirror, IReadOnlyList<string> UnsupportedOperators);
