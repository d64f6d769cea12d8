namespace SaliencyService.Explain.Mirror;

/// <summary>
/// Registers a backward rule <c>static GradientRule? Name(OpContext)</c> for an op type: the
/// node's vector–Jacobian product written as ONNX nodes, run by ONNX Runtime on the values its
/// forward recorded. Returning null means the node's backward cannot be written (for instance a
/// convolution whose weights are not constant); a model with such a node on the path to its
/// score is explained with libtorch's autograd instead.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class OnnxGradientAttribute(string opType) : Attribute
{
    public string OpType { get; } = opType;
}
