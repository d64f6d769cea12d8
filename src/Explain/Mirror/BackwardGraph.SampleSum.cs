using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// The backward summed over a batch's samples: integrated gradients and SmoothGrad need only the
/// sum of their samples' gradients. The last ops before the input gradient are often linear and
/// act on each sample alone, the weights their only other operands (the first convolution's input
/// gradient, an input normalisation's scale), so they can run once on the sum of what reaches
/// them instead of once a sample: resnet18's 7×7/2 stem is ~2 of a sample's ~45 ms.
/// </summary>
public sealed partial class BackwardGraph
{
    /// <summary>The most ops written again after the sum: an untrusted model's long chains of them are summed where the run ends.</summary>
    private const int MaxSummedDepth = 256;

    /// <summary>Whether <see cref="ToModel"/> summed the samples before some of the backward's products (else only its output is summed).</summary>
    public bool SumsBeforeProducts { get; private set; }

    /// <summary>
    /// <paramref name="gradient"/> summed over the batch ([1, ...]): the ops that are linear and per
    /// sample (<see cref="PerSampleLinear"/>) written again over the sums of their gradient operands,
    /// the first other value on each path summed where it is made (<see cref="NativeOps.SampleSum"/>,
    /// or ReduceSum without the engine's kernels). Only for a model whose batch dimension is free:
    /// its constants cannot depend on the batch.
    /// </summary>
    private string SummedOverSamples(string gradient, Dictionary<string, string> summed, HashSet<string> constants, int depth = 0)
    {
        if (summed.TryGetValue(gradient, out var done)) return done;
        string sum;
        if (depth < MaxSummedDepth && _producers.TryGetValue(gradient, out var node) && PerSampleLinear(node, constants))
        {
            var inputs = node.Input.Select(input => constants.Contains(input) ? input : SummedOverSamples(input, summed, constants, depth + 1)).ToArray();
            sum = Node(node.OpType, inputs, [.. node.Attribute]);
            _graph.Node[^1].Domain = node.Domain;
            SumsBeforeProducts |= node.OpType is "Conv" or "ConvTranspose" or "MatMul" or NativeOps.Col2Im or NativeOps.DepthwiseCol2Im or NativeOps.WinogradConv;
        }
        else
            sum = NativeKernels ? NativeNode(NativeOps.SampleSum, [gradient]) : Node("ReduceSum", [gradient, Ints(0)], Attribute("keepdims", 1));
        return summed[gradient] = sum;
    }

    /// <summary>
    /// Whether <paramref name="node"/> is linear in its gradient operands and keeps samples apart:
    /// a product with a constant (no bias), a native scatter, a reshape that keeps the batch
    /// dimension, a transpose that keeps it first, or a sum of gradients. A rectifier's gate reads
    /// the forward's values, and ends the run.
    /// </summary>
    private bool PerSampleLinear(NodeProto node, HashSet<string> constants)
    {
        if (node.Output.Count != 1) return false;
        var constant = node.Input.Select(constants.Contains).ToArray();
        if (constant.All(c => c)) return false;
        if (node.Domain == NativeOps.Domain)
            return node.OpType == NativeOps.Col2Im && node.Input.Count == 1
                   || node.OpType is NativeOps.DepthwiseCol2Im or NativeOps.WinogradConv && node.Input.Count == 2 && !constant[0] && constant[1];
        if (node.Domain is not ("" or "ai.onnx")) return false;
        return node.OpType switch
        {
            "Conv" or "ConvTranspose" or "Div" => node.Input.Count == 2 && !constant[0] && constant[1],
            "MatMul" or "Mul" => node.Input.Count == 2 && constant[0] != constant[1],
            "Reshape" => node.Input.Count == 2 && constant[1] && KeepsBatch(node.Input[1])
                         && !node.Attribute.Any(a => a.Name == "allowzero" && a.I != 0),
            "Transpose" => node.Attribute.FirstOrDefault(a => a.Name == "perm") is { Ints: [0, ..] },
            "Identity" => true,
            "Sum" or "Add" => !constant.Any(c => c),
            _ => false,
        };
    }

    /// <summary>Whether a reshape's shape (a constant this graph wrote) copies the batch dimension: its first entry is 0.</summary>
    private bool KeepsBatch(string shape)
    {
        var proto = _graph.Initializer.FirstOrDefault(i => i.Name == shape);
        if (proto is null || proto.DataType != (int)DataType.Int64 || proto.Dims.Count != 1 || proto.Dims[0] < 1) return false;
        return proto.RawData.Length >= sizeof(long) ? BitConverter.ToInt64(proto.RawData.Span) == 0 : proto.Int64Data is [0, ..];
    }

    /// <summary>The initializers and the values computed from them alone (a kernel transposed), in one pass over the nodes in order.</summary>
    private HashSet<string> Constants()
    {
        var constants = _graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var node in _graph.Node.Where(n => n.Input.All(constants.Contains)))
            constants.UnionWith(node.Output);
        return constants;
    }
}
