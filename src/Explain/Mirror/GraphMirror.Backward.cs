using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// A tensor's shape (−1 where it follows the batch size) and element type, and for a small integer
/// tensor computed from shapes alone (Slice bounds, Gather indices made with Shape) its values,
/// which backward rules may then treat as constants. <paramref name="BatchFactor"/>: the size of the
/// batch dimension per sample (Swin folds its windows into it: 64 per image).
/// </summary>
public sealed record TensorInfo(long[] Shape, ScalarType Type, long[]? Values = null, long BatchFactor = 1)
{
    /// <summary>Equal when every dimension, the type, every known value and the batch factor are (not the arrays' identities).</summary>
    public bool Equals(TensorInfo? other) =>
        other is not null && Type == other.Type && BatchFactor == other.BatchFactor && Shape.SequenceEqual(other.Shape)
        && (Values is null ? other.Values is null : other.Values is not null && Values.SequenceEqual(other.Values));

    public override int GetHashCode() => HashCode.Combine(Type, BatchFactor, Shape.Length, Shape.FirstOrDefault(), Values?.Length);
}

/// <summary>
/// The mirror's backward written as an ONNX graph (<see cref="BackwardGraph"/>) from each node's
/// rule, so that ONNX Runtime runs the whole explanation — its forward is the served model's own.
/// </summary>
public sealed partial class GraphMirror
{
    /// <summary>
    /// Shape and type of every tensor computed from an input of <paramref name="inputShape"/>, by a
    /// forward pass on zeros (shapes of the supported operators never depend on values).
    /// </summary>
    public Dictionary<string, TensorInfo> Shapes(long[] inputShape)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return ShapesOf(Forward(zeros(inputShape), RectifierRule.Gradient));
    }

    /// <summary>The most elements an integer value may have for <see cref="TensorInfo"/> to keep its values.</summary>
    public const long KeptValues = 16;

    /// <summary>The shape and type of every computed value of a forward pass (<see cref="Forward"/>'s result), as <see cref="Shapes"/> gives them.</summary>
    public Dictionary<string, TensorInfo> ShapesOf(IReadOnlyDictionary<string, Tensor> values) =>
        values.Where(v => !_constants.ContainsKey(v.Key))
            .ToDictionary(v => v.Key, v => new TensorInfo(v.Value.shape, v.Value.dtype,
                v.Value.dtype == ScalarType.Int64 && v.Value.NumberOfElements <= KeptValues ? v.Value.data<long>().ToArray() : null), StringComparer.Ordinal);

    /// <summary>
    /// <paramref name="shapes"/> as a mirror computing in <paramref name="floatType"/> types them
    /// (a mirror's floating-point values are all of its float type, whatever the model's are).
    /// </summary>
    public static Dictionary<string, TensorInfo> InPrecision(IReadOnlyDictionary<string, TensorInfo> shapes, ScalarType floatType) =>
        shapes.ToDictionary(p => p.Key, p => is_floating_point(p.Value.Type) ? p.Value with { Type = floatType } : p.Value, StringComparer.Ordinal);

    /// <summary>
    /// Shapes with −1 for the batch dimension: the one dimension of a tensor that grows with the
    /// batch (a forward on a batch of one and one of two tells them apart), usually the first;
    /// Swin's window attention moves it to the second (qkv as [3, batch × windows, ...]). Without
    /// <paramref name="batched"/>, the shapes of <paramref name="sampleShape"/> as it is (a fixed batch).
    /// </summary>
    /// <exception cref="NotSupportedException">A tensor follows the batch size along several dimensions.</exception>
    public Dictionary<string, TensorInfo> BatchShapes(long[] sampleShape, bool batched) =>
        batched ? BatchShapes(Shapes([1, .. sampleShape[1..]]), Shapes([2, .. sampleShape[1..]])) : Shapes(sampleShape);

    /// <summary>
    /// As above, from the shapes of a forward on a batch of one (<paramref name="one"/>: shapes and
    /// integer values only, so it may come from a mirror of another precision) and of one on a batch
    /// of two (<paramref name="two"/>, whose types are kept).
    /// </summary>
    public static Dictionary<string, TensorInfo> BatchShapes(IReadOnlyDictionary<string, TensorInfo> one, IReadOnlyDictionary<string, TensorInfo> two) =>
        one.ToDictionary(p => p.Key, p =>
        {
            var (a, b) = (p.Value.Shape, two[p.Key].Shape);
            var info = p.Value with { Type = two[p.Key].Type };
            // Integer values that differ with the batch size are not constants of the backward.
            if (info.Values is { } values && (two[p.Key].Values is not { } other || !values.SequenceEqual(other))) info = info with { Values = null };
            if (a.SequenceEqual(b)) return info;
            var grown = a.Length == b.Length ? Enumerable.Range(0, a.Length).Where(d => a[d] != b[d]).ToArray() : [];
            if (grown is [var d] && 2 * a[d] == b[d]) return info with { Shape = [.. a[..d], -1, .. a[(d + 1)..]], BatchFactor = a[d] };
            throw new NotSupportedException($"'{p.Key}' follows the batch size along several dimensions");
        }, StringComparer.Ordinal);

    /// <summary>
    /// Writes the backward of ∂score/∂input — or, with <paramref name="layer"/>, of ∂score/∂layer
    /// (Grad-CAM's; the backward then stops there) — as an ONNX model, its rectifiers passing back
    /// what <paramref name="rule"/> says.
    /// </summary>
    /// <exception cref="NotSupportedException">A node on the path to the score has no backward rule.</exception>
    /// <param name="model">The model the mirror was built from: the backward shares its weights (<see cref="BackwardGraph.ConstantInput"/>).</param>
    /// <param name="summed">Whether the input gradient is summed over the batch (a free one; <see cref="BackwardGraph.ToModel"/>).</param>
    /// <param name="onCpu">Whether the backward runs on CPU, so that it may use the engine's own kernels (<see cref="BackwardGraph.NativeKernels"/>).</param>
    /// <param name="race">Where given, a one-sample pass's 3×3 convolutions run as the engine's Winograd kernel only where it is faster on this host (<see cref="WinogradConvolutions.Race"/>).</param>
    public (ModelProto Model, BackwardGraph Graph) WriteBackward(ModelProto model, IReadOnlyDictionary<string, TensorInfo> shapes, RectifierRule rule,
        string? layer = null, bool summed = false, bool onCpu = true, WinogradRace? race = null)
    {
        // The tensors rules make on the way (pooling counts, gate weights) are copied into the
        // graph's initializers and die with this scope.
        using var scope = NewDisposeScope();
        var native = onCpu && NativeOps.Available;
        var graph = new BackwardGraph(shapes, InputName, ScoreName, rule, model.Graph.Initializer)
        {
            NativeKernels = native, Winograd = WinogradConvolutions.For(native, summed, race), SumsSamples = summed,
        };
        var fromInput = InputDependent(shapes);
        var fromValues = ValueDependent();
        var contributions = new Dictionary<string, List<string>>(StringComparer.Ordinal) { [ScoreName] = [graph.Seed] };
        for (var s = _steps.Count - 1; s >= 0; s--)
        {
            var step = _steps[s];
            // The producer of the layer: every gradient contribution to it is in.
            if (layer is not null && step.Outputs.Contains(layer))
                return contributions.TryGetValue(layer, out var parts)
                    ? (graph.ToModel(parts, shapes[layer].Shape), graph)
                    : throw new NotSupportedException($"the score does not depend on '{layer}'");
            var outputGradients = step.Outputs.Select(o => o.Length > 0 && contributions.Remove(o, out var parts) ? graph.Sum(parts) : null).ToArray();
            if (outputGradients.All(g => g is null)) continue;
            var wanted = step.Inputs.Select(name => fromInput.Contains(name) && Differentiable(name, shapes)).ToArray();
            if (!wanted.Any(w => w)) continue;
            if (step.Gradient is null) throw new NotSupportedException($"{step.OpType} ('{step.Outputs[0]}') has no backward rule");

            var node = new GradientNode(step.Inputs, step.Outputs, outputGradients, wanted,
                step.Inputs.Select(name => ShapeOf(name, shapes)).ToArray(),
                step.Outputs.Select(name => ShapeOf(name, shapes)).ToArray(),
                step.Inputs.Select(name => fromValues.Contains(name) ? null : ConstantOf(name, shapes)).ToArray(),
                step.Inputs.Select(fromValues.Contains).ToArray());
            string?[] inputGradients;
            try
            {
                inputGradients = step.Gradient.Emit(graph, node);
            }
            catch (NotSupportedException e)
            {
                throw new NotSupportedException($"{step.OpType} ('{step.Outputs[0]}'): {e.Message}", e);
            }
            for (var i = 0; i < step.Inputs.Length && i < inputGradients.Length; i++)
            {
                if (!wanted[i] || inputGradients[i] is not { } gradient) continue;
                if (!contributions.TryGetValue(step.Inputs[i], out var parts)) contributions[step.Inputs[i]] = parts = [];
                parts.Add(gradient);
                graph.Contributed(gradient);
            }
        }
        if (layer is not null) throw new NotSupportedException($"'{layer}' is not computed from the input");
        if (!contributions.TryGetValue(InputName, out var input))
            throw new NotSupportedException("the score does not depend on the input");
        return (graph.ToModel(input, shapes[InputName].Shape, summed), graph);
    }

    /// <summary>
    /// The floating-point tensors computed from the input's values. Only they carry a gradient to
    /// it: masks, position tables and shape arithmetic (Swin's window masks, made from the input's
    /// shape, not its values) need no backward rule.
    /// </summary>
    private HashSet<string> InputDependent(IReadOnlyDictionary<string, TensorInfo> shapes)
    {
        var dependent = new HashSet<string>(StringComparer.Ordinal) { InputName };
        foreach (var step in _steps.Where(s => s.Inputs.Any(dependent.Contains)))
            dependent.UnionWith(step.Outputs.Where(o => Differentiable(o, shapes)));
        return dependent;
    }

    /// <summary>Every tensor computed from the input's values, of any type (Shape and Size read only its shape).</summary>
    private HashSet<string> ValueDependent()
    {
        var dependent = new HashSet<string>(StringComparer.Ordinal) { InputName };
        foreach (var step in _steps.Where(s => s.OpType is not ("Shape" or "Size") && s.Inputs.Any(dependent.Contains)))
            dependent.UnionWith(step.Outputs.Where(o => o.Length > 0));
        return dependent;
    }

    /// <summary>An initializer or folded constant, or integer values computed from shapes alone.</summary>
    private Tensor? ConstantOf(string name, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        _constants.GetValueOrDefault(name)
        ?? (shapes.TryGetValue(name, out var info) && info.Values is { } values ? tensor(values).reshape(info.Shape) : null);

    private long[]? ShapeOf(string name, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        name.Length == 0 ? null
        : _constants.TryGetValue(name, out var constant) ? constant.shape
        : shapes.TryGetValue(name, out var info) ? info.Shape : null;

    private bool Differentiable(string name, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        name == InputName
        || name.Length > 0 && !_constants.ContainsKey(name) && shapes.TryGetValue(name, out var info) && is_floating_point(info.Type);
}
