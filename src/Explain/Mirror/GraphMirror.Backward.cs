using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

/// <summary>A tensor's shape (−1 where it follows the batch size) and element type.</summary>
public sealed record TensorInfo(long[] Shape, ScalarType Type);

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
        return Forward(zeros(inputShape), RectifierRule.Gradient)
            .Where(v => !_constants.ContainsKey(v.Key))
            .ToDictionary(v => v.Key, v => new TensorInfo(v.Value.shape, v.Value.dtype), StringComparer.Ordinal);
    }

    /// <summary>
    /// Shapes with −1 for the batch dimension: the first dimension of tensors that grow with the
    /// batch (a forward on a batch of one and one of two tells them apart). Without
    /// <paramref name="batched"/>, the shapes of <paramref name="sampleShape"/> as it is (a fixed batch).
    /// </summary>
    /// <exception cref="NotSupportedException">A tensor follows the batch size along another dimension.</exception>
    public Dictionary<string, TensorInfo> BatchShapes(long[] sampleShape, bool batched)
    {
        if (!batched) return Shapes(sampleShape);
        var one = Shapes([1, .. sampleShape[1..]]);
        var two = Shapes([2, .. sampleShape[1..]]);
        return one.ToDictionary(p => p.Key, p =>
        {
            var (a, b) = (p.Value.Shape, two[p.Key].Shape);
            if (a.SequenceEqual(b)) return p.Value;
            if (a.Length == b.Length && a.Length > 0 && 2 * a[0] == b[0] && a[1..].SequenceEqual(b[1..]))
                return p.Value with { Shape = [-1, .. a[1..]] };
            throw new NotSupportedException($"'{p.Key}' follows the batch size along more than its first dimension");
        }, StringComparer.Ordinal);
    }

    /// <summary>
    /// Writes the backward of ∂score/∂input — or, with <paramref name="layer"/>, of ∂score/∂layer
    /// (Grad-CAM's; the backward then stops there) — as an ONNX model.
    /// </summary>
    /// <exception cref="NotSupportedException">A node on the path to the score has no backward rule.</exception>
    public (ModelProto Model, BackwardGraph Graph) WriteBackward(IReadOnlyDictionary<string, TensorInfo> shapes, string? layer = null)
    {
        // The tensors rules make on the way (flipped weights, pooling counts) are copied into the
        // graph's initializers and die with this scope.
        using var scope = NewDisposeScope();
        var graph = new BackwardGraph(shapes, ScoreName);
        var fromInput = InputDependent(shapes);
        var contributions = new Dictionary<string, List<string>>(StringComparer.Ordinal) { [ScoreName] = [BackwardGraph.Seed] };
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
                step.Inputs.Select(name => _constants.GetValueOrDefault(name)).ToArray());
            var inputGradients = step.Gradient.Emit(graph, node);
            for (var i = 0; i < step.Inputs.Length && i < inputGradients.Length; i++)
            {
                if (!wanted[i] || inputGradients[i] is not { } gradient) continue;
                if (!contributions.TryGetValue(step.Inputs[i], out var parts)) contributions[step.Inputs[i]] = parts = [];
                parts.Add(gradient);
            }
        }
        if (layer is not null) throw new NotSupportedException($"'{layer}' is not computed from the input");
        if (!contributions.TryGetValue(InputName, out var input))
            throw new NotSupportedException("the score does not depend on the input");
        return (graph.ToModel(input, shapes[InputName].Shape), graph);
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

    private long[]? ShapeOf(string name, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        name.Length == 0 ? null
        : _constants.TryGetValue(name, out var constant) ? constant.shape
        : shapes.TryGetValue(name, out var info) ? info.Shape : null;

    private bool Differentiable(string name, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        name == InputName
        || name.Length > 0 && !_constants.ContainsKey(name) && shapes.TryGetValue(name, out var info) && is_floating_point(info.Type);
}
