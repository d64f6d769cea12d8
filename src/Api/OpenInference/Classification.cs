using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// Triton's classification extension: an output asked for with the parameter
/// <c>classification: N</c> comes back as BYTES, each sample's N highest values as
/// <c>"value:index[:label]"</c>, highest first (ties by index), labels from the model's manifest.
/// Per sample where the model batches (its configuration's <c>max_batch_size</c> &gt; 0:
/// shape [batch, N]), else over the whole output (shape [N]). What Triton's image_client and
/// tritonclient's <c>class_count</c> ask for.
/// </summary>
public static class Classification
{
    public const string Parameter = "classification";

    /// <summary>The count in a REST output's parameters; null where none is asked for.</summary>
    public static int? Count(Dictionary<string, JsonElement>? parameters, string output) =>
        parameters?.TryGetValue(Parameter, out var value) != true ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var count) ? Checked(count, output)
        : throw new InvalidArgumentException($"Output '{output}': '{Parameter}' must be an integer, the number of classes to return.");

    /// <summary>The count in a gRPC output's parameters; null where none is asked for.</summary>
    public static int? Count(IDictionary<string, Grpc.InferParameter> parameters, string output) =>
        !parameters.TryGetValue(Parameter, out var value) ? null
        : value.ParameterChoiceCase == Grpc.InferParameter.ParameterChoiceOneofCase.Int64Param ? Checked(value.Int64Param, output)
        : throw new InvalidArgumentException($"Output '{output}': '{Parameter}' must be an int64_param, the number of classes to return.");

    private static int Checked(long count, string output) => count is > 0 and <= int.MaxValue
        ? (int)count
        : throw new InvalidArgumentException($"Output '{output}': '{Parameter}' must be at least 1; it is {count}.");

    /// <summary>The outputs, those named in <paramref name="counts"/> replaced by their classifications (per sample where the model batches).</summary>
    public static IReadOnlyList<NamedTensor> Apply(IReadOnlyList<NamedTensor> outputs, IReadOnlyDictionary<string, int> counts, ServedModel model, PredictBatchers batchers)
    {
        if (counts.Count == 0) return outputs;
        var batched = TritonExtensions.Batched(model, batchers);
        return outputs.Select(o => counts.TryGetValue(o.Name, out var n) ? Of(o, n, batched, model.Descriptor.Labels) : o).ToArray();
    }

    public static NamedTensor Of(NamedTensor output, int count, bool batched, IReadOnlyList<string>? labels)
    {
        var data = V2TensorData.Writable(output);
        if (data is bool[]) throw new InvalidArgumentException($"Output '{output.Name}' is BOOL; '{Parameter}' ranks numbers.");
        var values = new double[output.ElementCount];
        for (var i = 0; i < values.Length; i++) values[i] = Convert.ToDouble(data.GetValue(i), CultureInfo.InvariantCulture);
        var samples = batched && output.Shape.Length > 0 ? (int)output.Shape[0] : 1;
        var perSample = samples == 0 ? 0 : values.Length / samples;
        var classes = Math.Min(count, perSample);
        var integral = output.Type is not (TensorElementType.Float or TensorElementType.Double or TensorElementType.Float16 or TensorElementType.BFloat16);
        var result = new string[samples * classes];
        for (var s = 0; s < samples; s++)
        {
            var first = s * perSample;
            var order = Enumerable.Range(0, perSample).ToArray();
            Array.Sort(order, (a, b) => Compare(values[first + a], values[first + b], a, b));
            for (var k = 0; k < classes; k++)
            {
                var index = order[k];
                // As Triton writes them (std::to_string): six decimals, or the integer itself.
                var value = integral
                    ? Convert.ToString(data.GetValue(first + index), CultureInfo.InvariantCulture)
                    : values[first + index].ToString("F6", CultureInfo.InvariantCulture);
                var label = labels is not null && index < labels.Count ? ":" + labels[index] : "";
                result[s * classes + k] = $"{value}:{index}{label}";
            }
        }
        return new NamedTensor(output.Name, TensorElementType.String, batched ? [samples, classes] : [classes], result);
    }

    /// <summary>Highest first, NaN last, equal values by index.</summary>
    private static int Compare(double x, double y, int i, int j)
    {
        if (double.IsNaN(x) || double.IsNaN(y))
            return double.IsNaN(x) == double.IsNaN(y) ? i.CompareTo(j) : double.IsNaN(x) ? 1 : -1;
        var byValue = y.CompareTo(x);
        return byValue != 0 ? byValue : i.CompareTo(j);
    }
}
