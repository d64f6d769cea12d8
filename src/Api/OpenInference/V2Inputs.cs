using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference;

/// <summary>The checks every v2 input passes, over REST or gRPC: what the model takes, within the limits.</summary>
public static class V2Inputs
{
    /// <summary>
    /// One input against the model: a known name not given before, the model's datatype, its rank
    /// and fixed dimensions, at most <paramref name="maxElements"/> elements.
    /// </summary>
    public static (string Name, TensorElementType Type, long[] Shape, long Count) Check(ServedModel model, string? name, string? datatype,
        IReadOnlyList<long>? shape, long maxElements, IReadOnlyList<NamedTensor> earlier)
    {
        if (string.IsNullOrEmpty(name)) throw new InvalidArgumentException("Every input needs a name.");
        var expected = model.Descriptor.Inputs;
        var descriptor = expected.FirstOrDefault(i => i.Name == name)
                         ?? throw new InvalidArgumentException($"Unknown input '{name}'; the model's inputs are: {string.Join(", ", expected.Select(i => i.Name))}.");
        if (earlier.Any(i => i.Name == name)) throw new InvalidArgumentException($"Input '{name}' is given twice.");
        var type = V2DataTypes.Parse(datatype, name);
        var modelType = model.Onnx.ElementTypes[name];
        if (type != modelType) throw new InvalidArgumentException($"Input '{name}' is {datatype}; the model takes {V2DataTypes.Name(modelType)}.");
        if (shape is null) throw new InvalidArgumentException($"Input '{name}' needs a shape.");
        if (shape.Any(d => d < 0))
            throw new InvalidArgumentException($"Input '{name}' has shape [{string.Join(", ", shape)}]; a request gives every dimension's size (0 or more).");
        if (shape.Count != descriptor.Shape.Count || shape.Where((d, i) => descriptor.Shape[i] >= 0 && d != descriptor.Shape[i]).Any())
            throw new InvalidArgumentException(
                $"Input '{name}' has shape [{string.Join(", ", shape)}]; the model takes [{string.Join(", ", descriptor.Shape)}] (-1 = any size).");
        long count;
        try
        {
            count = shape.Aggregate(1L, (n, d) => checked(n * d));
        }
        catch (OverflowException)
        {
            throw new InputTooLargeException($"Input '{name}' has an absurdly large shape.");
        }
        if (count > maxElements) throw new InputTooLargeException($"Input '{name}' has {count} elements; the limit is {maxElements}.");
        return (name, type, shape.ToArray(), count);
    }

    /// <summary>Raw little-endian elements: exactly the shape's count, finite where they are floating point.</summary>
    public static Array FromBytes(string name, TensorElementType type, long count, ReadOnlySpan<byte> bytes)
    {
        var expected = count * NamedTensor.ElementSize(type);
        if (bytes.Length != expected)
            throw new InvalidArgumentException($"Input '{name}' has {bytes.Length} bytes of raw data; its shape and datatype take {expected}.");
        var data = NamedTensor.FromBytes(name, type, [count], bytes).Data;
        CheckFinite(data, name);
        return data;
    }

    /// <summary>Every input the model has was given.</summary>
    public static void CheckComplete(ServedModel model, IReadOnlyList<NamedTensor> inputs)
    {
        if (inputs.Count == 0) throw new InvalidArgumentException("The request has no inputs.");
        var missing = model.Descriptor.Inputs.Select(i => i.Name).Except(inputs.Select(i => i.Name)).ToArray();
        if (missing.Length > 0) throw new InvalidArgumentException($"The model also needs the input(s): {string.Join(", ", missing)}.");
    }

    /// <summary>Models are fed finite numbers only (as on /v1).</summary>
    public static void CheckFinite(Array data, string name)
    {
        if (NonFinite.IndexOf(data) is var index and >= 0) throw new InvalidArgumentException($"Input '{name}' holds a non-finite value at flat index {index}; models are fed finite numbers only.");
    }

    /// <summary>Whether the inputs can join other requests' in one batch: each has the same sample count first.</summary>
    public static bool Batchable(IReadOnlyList<NamedTensor> inputs) =>
        inputs.All(i => i.Shape.Length > 0) && inputs.Select(i => i.Shape[0]).Distinct().Count() == 1;
}
