using System.Text.Json;
using System.Text.Json.Serialization;

namespace SaliencyService.Api.OpenInference;

// The Open Inference Protocol's (KServe v2) REST messages, as its spec names their fields.

/// <summary>GET /v2: the server's metadata.</summary>
public sealed record ServerMetadataResponse(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("extensions")] IReadOnlyList<string> Extensions);

/// <summary>GET /v2/models/{name}: a model's metadata.</summary>
public sealed record ModelMetadataResponse(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("versions")] IReadOnlyList<string> Versions,
    [property: JsonPropertyName("platform")] string Platform,
    [property: JsonPropertyName("inputs")] IReadOnlyList<MetadataTensor> Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<MetadataTensor> Outputs);

/// <summary>A tensor of the model's metadata; -1 for a free dimension.</summary>
public sealed record MetadataTensor(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape);

/// <summary>POST .../infer and .../explain: the request (JSON, or the JSON header of the binary extension).</summary>
public sealed record InferRequest(
    [property: JsonPropertyName("id")] string? Id,
    [property: JsonPropertyName("parameters")] Dictionary<string, JsonElement>? Parameters,
    [property: JsonPropertyName("inputs")] IReadOnlyList<RequestInput>? Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<RequestOutput>? Outputs);

public sealed record RequestInput(
    [property: JsonPropertyName("name")] string? Name,
    [property: JsonPropertyName("shape")] long[]? Shape,
    [property: JsonPropertyName("datatype")] string? Datatype,
    [property: JsonPropertyName("parameters")] Dictionary<string, JsonElement>? Parameters,
    [property: JsonPropertyName("data")] JsonElement? Data);

public sealed record RequestOutput(
    [property: JsonPropertyName("name")] string? Name,
    [property: JsonPropertyName("parameters")] Dictionary<string, JsonElement>? Parameters);

/// <summary>The response (JSON, or the JSON header of the binary extension).</summary>
public sealed record InferResponse(
    [property: JsonPropertyName("model_name")] string ModelName,
    [property: JsonPropertyName("model_version")] string ModelVersion,
    [property: JsonPropertyName("id"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    [property: JsonPropertyName("parameters"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, object?>? Parameters,
    [property: JsonPropertyName("outputs")] IReadOnlyList<ResponseOutput> Outputs);

public sealed record ResponseOutput(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("parameters"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, object>? Parameters,
    [property: JsonPropertyName("data"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Array? Data);

/// <summary>Every /v2 failure: the protocol's error object.</summary>
public sealed record V2Error([property: JsonPropertyName("error")] string Error);
