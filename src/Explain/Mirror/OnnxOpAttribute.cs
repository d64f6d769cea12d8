namespace SaliencyService.Explain.Mirror;

/// <summary>
/// Registers a converter method <c>static OpKernel Name(OpContext)</c> for an op type from an
/// opset version on; the model's opset picks the greatest registered version not above it.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class OnnxOpAttribute(string opType, int sinceVersion = 1) : Attribute
{
    public string OpType { get; } = opType;
    public int SinceVersion { get; } = sinceVersion;
}
