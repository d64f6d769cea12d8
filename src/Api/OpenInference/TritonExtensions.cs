using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Contracts;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// Two of Triton's HTTP extensions beside the Open Inference Protocol, which Triton's clients
/// (<c>get_model_config</c>, <c>get_inference_statistics</c>) and its load generator perf_analyzer
/// read before they send a request: the model configuration (<c>max_batch_size</c> and the
/// per-sample dims where the dynamic batcher takes the model, its inputs and outputs) and the
/// per-version statistics of <see cref="ModelStatistics"/>.
/// </summary>
public static class TritonExtensions
{
    /// <summary>
    /// The extensions the server metadata lists. Statistics are served but not listed: perf_analyzer
    /// collects them only from servers that list them, and then reads each model's version as an
    /// integer (<c>std::stoll</c>), which a generation here is not; unlisted, it profiles from its own
    /// side, as against any v2 server.
    /// </summary>
    public static readonly string[] Names = ["model_configuration"];

    /// <summary><c>GET /v2/models/stats</c>: every served model's statistics.</summary>
    public static void MapServer(RouteGroupBuilder v2) =>
        v2.MapGet("/models/stats", AllStatistics).WithName("V2Statistics").WithSummary("Inference statistics of every model (Triton's statistics extension)");

    public static void MapModel(RouteGroupBuilder v2, string model, string suffix)
    {
        v2.MapGet(model + "/config", ModelConfig).WithName("V2ModelConfig" + suffix)
            .WithSummary("Model configuration (Triton's model configuration extension): max_batch_size, inputs, outputs, dynamic batching");
        v2.MapGet(model + "/stats", ModelStatistics).WithName("V2ModelStatistics" + suffix)
            .WithSummary("Inference statistics of the model (Triton's statistics extension)");
    }

    public static IResult ModelConfig(string name, string? version, ModelStore store, PredictBatchers batchers, IOptions<SaliencyOptions> options)
    {
        using var lease = OpenInferenceApi.Lease(store, name, version);
        var model = lease.Model;
        // Batched as Triton batches: every tensor's first dimension is the batch, and dims are per sample.
        var batched = batchers.For(model) is not null && model.Descriptor.Outputs.All(o => o.Shape is [-1, ..]);
        Dictionary<string, object> Tensor(TensorDescriptor t) => new()
        {
            ["name"] = t.Name,
            ["data_type"] = "TYPE_" + OpenInferenceApi.DataType(model, t),
            ["dims"] = t.Shape.Skip(batched ? 1 : 0).ToArray(),
        };
        var config = new Dictionary<string, object>
        {
            ["name"] = name,
            ["platform"] = OpenInferenceApi.Platform,
            ["backend"] = "onnxruntime",
            ["version_policy"] = new { latest = new { num_versions = 1 } },
            ["max_batch_size"] = batched ? options.Value.Predict.MaxBatchSize : 0,
            ["input"] = model.Descriptor.Inputs.Select(Tensor).ToArray(),
            ["output"] = model.Descriptor.Outputs.Select(Tensor).ToArray(),
            ["instance_group"] = new[] { new { name, kind = model.Onnx.ExecutionProvider == "CUDA" ? "KIND_GPU" : "KIND_CPU", count = 1 } },
        };
        if (batched) config["dynamic_batching"] = new { max_queue_delay_microseconds = options.Value.Predict.MaxQueueDelayMilliseconds * 1000L };
        return TypedResults.Json(config);
    }

    public static IResult ModelStatistics(string name, string? version, ModelStore store)
    {
        using var lease = OpenInferenceApi.Lease(store, name, version);
        return TypedResults.Json(new { model_stats = new[] { Of(lease.Model) } });
    }

    public static IResult AllStatistics(ModelStore store)
    {
        var stats = new List<object>();
        foreach (var descriptor in store.List())
        {
            try
            {
                using var lease = store.Lease(descriptor.Name);
                stats.Add(Of(lease.Model));
            }
            catch (Errors.ProblemException) { } // deleted since the list was taken
        }
        return TypedResults.Json(new { model_stats = stats });
    }

    private static object Of(ServedModel model) => model.Statistics.ToTriton(model.Name, model.Version.Generation);
}
