using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Inference;

/// <summary>One request's run of a model: its inputs (batch dimension first, the same sample count in each) and the outputs it asks for.</summary>
public sealed record InferWork(IReadOnlyList<NamedTensor> Inputs, IReadOnlyList<string> Outputs)
{
    public long Samples => Inputs[0].Shape[0];

    /// <summary>Whether the two can run as one batch: the same inputs (names, types, sample shapes) and outputs.</summary>
    public bool BatchesWith(InferWork other) =>
        Outputs.SequenceEqual(other.Outputs) && Inputs.Count == other.Inputs.Count &&
        Inputs.Zip(other.Inputs).All(p => p.First.Name == p.Second.Name && p.First.Type == p.Second.Type &&
                                          p.First.Shape.AsSpan(1).SequenceEqual(p.Second.Shape.AsSpan(1)));
}
