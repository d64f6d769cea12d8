using System.Text.Json;
using SaliencyService.Api.Inference;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// Writes an inference response: JSON, or, when any output is asked for as binary, the binary
/// tensor extension (the JSON header's length in <c>Inference-Header-Content-Length</c>, then
/// those outputs' raw bytes in order, each with <c>parameters.binary_data_size</c>).
/// </summary>
public static class V2Response
{
    private static readonly JsonSerializerOptions Json = new();

    public static IResult Write(string model, string version, string? id, IReadOnlyDictionary<string, object?>? parameters,
        IReadOnlyList<NamedTensor> outputs, IReadOnlySet<string> binaryOutputs)
    {
        var described = outputs.Select(o => binaryOutputs.Contains(o.Name)
            ? new ResponseOutput(o.Name, o.Shape, V2DataTypes.Name(o.Type), new Dictionary<string, object> { [V2Call.BinaryDataSize] = V2TensorData.Raw(o).Length }, null)
            : new ResponseOutput(o.Name, o.Shape, V2DataTypes.Name(o.Type), null, Finite(o))).ToArray();
        var header = JsonSerializer.SerializeToUtf8Bytes(new InferResponse(model, version, id, parameters, described), Json);
        var binary = outputs.Where(o => binaryOutputs.Contains(o.Name)).ToArray();
        if (binary.Length == 0) return TypedResults.Bytes(header, "application/json");

        var body = new byte[header.Length + binary.Sum(o => V2TensorData.Raw(o).Length)];
        header.CopyTo(body, 0);
        var offset = header.Length;
        foreach (var output in binary)
        {
            var raw = V2TensorData.Raw(output);
            raw.CopyTo(body.AsSpan(offset));
            offset += raw.Length;
        }
        return new BinaryResult(body, header.Length);
    }

    /// <summary>JSON has no NaN or infinity: such outputs are refused unless asked for as binary.</summary>
    private static Array Finite(NamedTensor output)
    {
        var data = V2TensorData.Writable(output);
        if (NonFinite.IndexOf(data) is var bad and >= 0)
            throw new UnsupportedModelException(
                $"The model computed a non-finite value in output '{output.Name}' at flat index {bad}, which JSON cannot carry; ask for it with parameters.binary_data.");
        return data;
    }

    private sealed class BinaryResult(byte[] body, int headerLength) : IResult
    {
        public Task ExecuteAsync(HttpContext context)
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.Headers[V2Call.HeaderLength] = headerLength.ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.ContentLength = body.Length;
            return context.Response.Body.WriteAsync(body).AsTask();
        }
    }
}
