using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

/// <summary>Runs one converted node: inputs (null where an optional input is absent) to outputs.</summary>
public delegate Tensor[] OpKernel(Tensor?[] inputs, RectifierRule rule);

/// <summary>What a converter sees of a node while the mirror is built.</summary>
public sealed class OpContext(NodeProto node, int opset, IReadOnlyList<Tensor?> constantInputs, ICollection<Tensor> owned,
    ScalarType floatType = ScalarType.Float32)
{
    public NodeProto Node { get; } = node;
    public int Opset { get; } = opset;
    public NodeAttributes Attributes { get; } = new(node);
    public string OpType => Node.OpType;

    /// <summary>The type floating-point values compute in: float32, or float64 for a reference mirror.</summary>
    public ScalarType FloatType { get; } = floatType;

    /// <summary>The value of input <paramref name="index"/> when it is known while building (initializer or folded constant).</summary>
    public Tensor? Constant(int index) => index < constantInputs.Count ? constantInputs[index] : null;

    /// <summary>
    /// Keeps a tensor a converter precomputed (e.g. folded BatchNorm factors) for the mirror's
    /// lifetime: out of every request's dispose scope, disposed with the mirror.
    /// </summary>
    public Tensor Own(Tensor tensor)
    {
        var kept = GraphMirror.InPrecision(tensor.detach(), FloatType).DetachFromDisposeScope();
        owned.Add(kept);
        return kept;
    }

    public bool HasInput(int index) => index < Node.Input.Count && Node.Input[index].Length > 0;

    public UnsupportedOperatorException Unsupported(string reason) => new(OpType, Opset, reason);
}
