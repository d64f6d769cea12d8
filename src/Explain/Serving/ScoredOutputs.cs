using SaliencyService.Contracts;

namespace SaliencyService.Explain.Serving;

/// <summary>Which output predict ranks and the import's probe runs.</summary>
public static class ScoredOutputs
{
    /// <summary>
    /// The first float32 output (the one explanations explain), else the first real-valued one (a
    /// float16 export's); null where the model has none.
    /// </summary>
    public static TensorDescriptor? Of(IReadOnlyList<TensorDescriptor> outputs) =>
        outputs.FirstOrDefault(o => o.DataType == "float32") ?? outputs.FirstOrDefault(o => FloatElements.IsReal(o.DataType));
}
