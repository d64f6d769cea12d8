using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Api.Security;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// The Open Inference Protocol (KServe v2) over REST, beside /v1: server and model metadata,
/// health, infer (JSON and the binary tensor extension) and the explain extension. Errors are the
/// protocol's <c>{"error": ...}</c>. Infer shares /v1's dynamic batcher, queues, limits and API key.
/// </summary>
public static class OpenInferenceApi
{
    public const string Platform = "onnxruntime_onnx";
    public const string AttributionsOutput = "attributions";
    public static readonly string[] Extensions = ["binary_tensor_data", "explain", "classification", .. TritonExtensions.Names];

    public static IEndpointRouteBuilder MapOpenInference(this IEndpointRouteBuilder app)
    {
        var v2 = app.MapGroup("/v2").WithTags("Open Inference Protocol (v2)")
            .AddEndpointFilter(ActivatorUtilities.CreateInstance<V2ErrorFilter>(app.ServiceProvider));
        v2.MapGet("", ServerMetadata).WithName("V2ServerMetadata").WithSummary("Server metadata: name, version, extensions");
        v2.MapGet("/health/live", Live).WithName("V2ServerLive").WithSummary("Server liveness");
        v2.MapGet("/health/ready", Ready).WithName("V2ServerReady").WithSummary("Server readiness: the model store is loaded");

        TritonExtensions.MapServer(v2);
        RepositoryExtension.Map(v2, app.ServiceProvider);

        var inference = v2.MapGroup("").RequireRateLimiting(RateLimiting.Policy)
            .AddEndpointFilter(ActivatorUtilities.CreateInstance<ApiKeyFilter>(app.ServiceProvider, true));
        foreach (var model in new[] { "/models/{name}", "/models/{name}/versions/{version}" })
        {
            var suffix = model.Contains("version") ? "Version" : "";
            v2.MapGet(model, ModelMetadata).WithName("V2ModelMetadata" + suffix).WithSummary("Model metadata: versions, platform, inputs, outputs")
                .ProducesV2Errors();
            v2.MapGet(model + "/ready", ModelReady).WithName("V2ModelReady" + suffix).WithSummary("Model readiness").ProducesV2Errors();
            TritonExtensions.MapModel(v2, model, suffix);
            inference.MapPost(model + "/infer", Infer).WithName("V2Infer" + suffix)
                .WithSummary("Run the model: JSON or the binary tensor extension")
                .WithDescription("Inputs {name, shape, datatype, data}; data flat or nested row-major, or raw bytes after a JSON header of " +
                                 "Inference-Header-Content-Length bytes with parameters.binary_data_size. Outputs asked for with " +
                                 "parameters.binary_data (or binary_data_output for all) come back as raw bytes the same way; with " +
                                 "parameters.classification N an output comes back as BYTES, each sample's top N as \"value:index:label\".")
                .Accepts<InferRequest>("application/json", "application/octet-stream", "*/*")
                .Produces<InferResponse>(StatusCodes.Status200OK, "application/json", "application/octet-stream")
                .ProducesV2Errors()
                .DisableAntiforgery();
            inference.MapPost(model + "/explain", Explain).WithName("V2Explain" + suffix)
                .WithSummary("Explain a prediction: an infer request plus parameters {method, target, layer, steps, samples, noise, seed, base}")
                .WithDescription("Answers a v2 response whose output 'attributions' (FP32) has the input's shape and layout, or [H, W] for grad-cam, " +
                                 "with parameters {method, target, label, score} and the method's parameters as used.")
                .Accepts<InferRequest>("application/json", "application/octet-stream", "*/*")
                .Produces<InferResponse>(StatusCodes.Status200OK, "application/json", "application/octet-stream")
                .ProducesV2Errors()
                .DisableAntiforgery();
        }
        return app;
    }

    /// <summary>The protocol's error object, for the statuses a client's request can earn.</summary>
    private static RouteHandlerBuilder ProducesV2Errors(this RouteHandlerBuilder route) =>
        new[] { 400, 404, 413, 422, 503 }.Aggregate(route, (r, status) => r.Produces<V2Error>(status));

    public static Ok<ServerMetadataResponse> ServerMetadata() =>
        TypedResults.Ok(new ServerMetadataResponse("saliency-service",
            typeof(OpenInferenceApi).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "1.0.0",
            Extensions));

    public static IResult Live() => TypedResults.Ok(new { live = true });

    public static async Task<IResult> Ready(HealthCheckService health, CancellationToken cancellationToken)
    {
        var ready = await Readiness.IsReadyAsync(health, cancellationToken);
        return TypedResults.Json(new { ready }, statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    public static Ok<ModelMetadataResponse> ModelMetadata(string name, string? version, ModelStore store)
    {
        using var lease = Lease(store, name, version);
        var model = lease.Model;
        MetadataTensor Tensor(TensorDescriptor t) => new(t.Name, DataType(model, t), t.Shape);
        return TypedResults.Ok(new ModelMetadataResponse(name, [model.Version.Name], Platform,
            model.Descriptor.Inputs.Select(Tensor).ToArray(), model.Descriptor.Outputs.Select(Tensor).ToArray()));
    }

    /// <summary>The protocol's datatype of one of the model's tensors (FP32, INT64, ...).</summary>
    public static string DataType(ServedModel model, TensorDescriptor tensor) =>
        model.Onnx.ElementTypes.TryGetValue(tensor.Name, out var type) ? V2DataTypes.Name(type) : tensor.DataType.ToUpperInvariant();

    public static IResult ModelReady(string name, string? version, ModelStore store)
    {
        using var lease = Lease(store, name, version);
        return TypedResults.Ok(new { name, ready = true });
    }

    public static async Task<IResult> Infer(string name, string? version, HttpRequest request, ModelStore store, OpenInferenceRunner runner,
        PredictBatchers batchers, IOptions<SaliencyOptions> options, CancellationToken cancellationToken)
    {
        using var lease = Lease(store, name, version);
        var model = lease.Model;
        var call = await V2Call.ReadAsync(request, model, options.Value, cancellationToken);
        var outputs = await runner.RunAsync(model, new InferWork(call.Inputs, call.Outputs), cancellationToken);
        return V2Response.Write(name, model.Version.Name, call.Request.Id, call.Request.Parameters?.ToDictionary(p => p.Key, p => (object?)p.Value),
            Classification.Apply(outputs, call.Classifications, model, batchers), call.BinaryOutputs);
    }

    public static async Task<IResult> Explain(string name, string? version, HttpRequest request, ModelStore store, ExplainService service,
        IOptions<SaliencyOptions> options, CancellationToken cancellationToken)
    {
        using var lease = Lease(store, name, version);
        var model = lease.Model;
        var call = await V2Call.ReadAsync(request, model, options.Value, cancellationToken, outputNames: [AttributionsOutput]);
        if (call.Classifications.Count > 0) throw new InvalidArgumentException($"'{Classification.Parameter}' applies to infer's outputs, not to attributions.");
        var imageInput = model.Preprocessing.Input;
        if (call.Inputs is not [var only] || only.Name != imageInput)
            throw new InvalidArgumentException($"Explain takes one input, '{imageInput}'.");
        // In the model's own datatype (V2Call checked it): uint8 pixels are explained as the float values they are.
        var input = new ModelInput(new FloatTensor(FloatElements.Of(only), only.Shape));

        using var explanation = await service.ExplainAsync(name, (descriptor, _) => descriptor == model.Descriptor
                ? Task.FromResult(input)
                : throw new ProblemException(503, "Model replaced", $"Model '{name}' was replaced during the request; retry it.") { RetryAfterSeconds = 1 },
            V2ExplainParameters.Read(call.Request.Parameters), cancellationToken);
        var map = explanation.Map;
        var labels = model.Descriptor.Labels;
        var parameters = new Dictionary<string, object?>(map.Parameters.Select(p => new KeyValuePair<string, object?>(p.Key, p.Value)))
        {
            ["method"] = map.Method.Name, ["target"] = map.Target, ["score"] = map.Score,
            ["label"] = labels is not null && map.Target < labels.Count ? labels[map.Target] : null,
        };
        var attributions = new NamedTensor(AttributionsOutput, TensorElementType.Float, map.MapShape, map.Map);
        return V2Response.Write(name, model.Version.Name, call.Request.Id, parameters, [attributions], call.BinaryOutputs);
    }

    /// <summary>The model, at the version asked for (404 for another; none or empty: the one served).</summary>
    public static ModelLease Lease(ModelStore store, string name, string? version)
    {
        var lease = store.Lease(name);
        if (string.IsNullOrEmpty(version) || lease.Model.Version.IsNamed(version)) return lease;
        lease.Dispose();
        throw ProblemException.NotFound($"Model '{name}' has no version '{version}'; it serves version '{lease.Model.Version.Name}'.");
    }
}
