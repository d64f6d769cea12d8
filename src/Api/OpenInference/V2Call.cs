using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// One infer or explain call as read from its body: JSON, or the binary tensor extension (a JSON
/// header of <c>Inference-Header-Content-Length</c> bytes, then each input marked with
/// <c>parameters.binary_data_size</c> as raw little-endian bytes, in order). Every input is checked
/// against the model: known name, its datatype, its shape, as many elements as the shape holds.
/// </summary>
/// <param name="Classifications">The outputs asked for as classifications, with the number of classes (<see cref="Classification"/>).</param>
public sealed record V2Call(InferRequest Request, IReadOnlyList<NamedTensor> Inputs, IReadOnlyList<string> Outputs, IReadOnlySet<string> BinaryOutputs,
    IReadOnlyDictionary<string, int> Classifications)
{
    public const string HeaderLength = "Inference-Header-Content-Length";
    public const string BinaryDataSize = "binary_data_size";

    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = false };

    public static async Task<V2Call> ReadAsync(HttpRequest http, ServedModel model, SaliencyOptions options, CancellationToken cancellationToken,
        IReadOnlyList<string>? outputNames = null)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var body = await RequestBodyLimit.ReadAllAsync(http, options.MaxRequestBodyBytes, cancellationToken);
        var headerLength = body.Length;
        if (http.Headers.TryGetValue(HeaderLength, out var declared))
        {
            if (!int.TryParse(declared, out headerLength) || headerLength < 0 || headerLength > body.Length)
                throw new InvalidArgumentException($"{HeaderLength} must be a length within the body (0–{body.Length}).");
        }
        InferRequest request;
        try
        {
            request = JsonSerializer.Deserialize<InferRequest>(body.AsSpan(0, headerLength), Json)
                      ?? throw new InvalidArgumentException("The request body is JSON null.");
        }
        catch (JsonException e)
        {
            throw new InvalidArgumentException("The request is not valid JSON for an inference request: " + e.Message);
        }

        var allBinary = Flag(request.Parameters, "binary_data_output");
        var available = outputNames ?? model.Descriptor.Outputs.Select(o => o.Name).ToArray();
        var requested = request.Outputs is { Count: > 0 } outputs ? outputs : available.Select(n => new RequestOutput(n, null)).ToArray();
        var names = new List<string>();
        var binaryOutputs = new HashSet<string>(StringComparer.Ordinal);
        var classifications = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var output in requested)
        {
            if (output.Name is null || !available.Contains(output.Name))
                throw new InvalidArgumentException($"Unknown output '{output.Name}'; the outputs are: {string.Join(", ", available)}.");
            names.Add(output.Name);
            if (allBinary || Flag(output.Parameters, "binary_data")) binaryOutputs.Add(output.Name);
            if (Classification.Count(output.Parameters, output.Name) is { } classes) classifications[output.Name] = classes;
        }

        var binary = new ReadOnlyMemory<byte>(body, headerLength, body.Length - headerLength);
        var inputs = ReadInputs(request, model, options.MaxTensorElements, ref binary);
        if (!binary.IsEmpty) throw new InvalidArgumentException($"{binary.Length} bytes of binary data follow the inputs that declare theirs.");
        Observability.ServerTiming.Add("read", started);
        return new V2Call(request, inputs, names, binaryOutputs, classifications);
    }

    private static List<NamedTensor> ReadInputs(InferRequest request, ServedModel model, long maxElements, ref ReadOnlyMemory<byte> binary)
    {
        var inputs = new List<NamedTensor>();
        foreach (var input in request.Inputs ?? [])
        {
            var (name, type, shape, count) = V2Inputs.Check(model, input.Name, input.Datatype, input.Shape, maxElements, inputs);
            Array data;
            if (input.Parameters?.TryGetValue(BinaryDataSize, out var size) == true)
            {
                var bytes = size.ValueKind == JsonValueKind.Number && size.TryGetInt64(out var b) ? b : -1;
                if (bytes < 0 || bytes > binary.Length)
                    throw new InvalidArgumentException($"Input '{name}' declares {size} binary bytes; {binary.Length} follow.");
                data = V2Inputs.FromBytes(name, type, count, binary.Span[..(int)bytes]);
                binary = binary[(int)bytes..];
            }
            else
            {
                data = input.Data is { } json
                    ? V2TensorData.Read(json, type, count, name)
                    : throw new InvalidArgumentException($"Input '{name}' has neither 'data' nor parameters.{BinaryDataSize}.");
            }
            inputs.Add(new NamedTensor(name, type, shape, data));
        }
        V2Inputs.CheckComplete(model, inputs);
        return inputs;
    }

    private static bool Flag(Dictionary<string, JsonElement>? parameters, string name) =>
        parameters?.TryGetValue(name, out var value) == true && value.ValueKind == JsonValueKind.True;
}
