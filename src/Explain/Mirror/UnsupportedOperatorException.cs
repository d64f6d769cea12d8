namespace SaliencyService.Explain.Mirror;

/// <summary>
/// The mirror cannot rebuild a node: no converter for the op at the model's opset, or a variant
/// the converter does not handle. The reason names the limit ("dilated AveragePool").
/// </summary>
public sealed class UnsupportedOperatorException(string opType, int opset, string reason)
    : Exception($"{opType} (opset {opset}): {reason}")
{
    public string OpType { get; } = opType;
    public int Opset { get; } = opset;
    public string Reason { get; } = reason;
}
