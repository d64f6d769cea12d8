using Google.Protobuf;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Contracts;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// Two of Triton's extensions beside the Open Inference Protocol, which Triton's clients
/// (<c>get_model_config</c>, <c>get_inference_statistics</c>) and its load generator perf_analyzer
/// read before they send a request and while they profile: the model configuration
/// (<c>max_batch_size</c> and the per-sample dims where the dynamic batcher takes the model, its
/// inputs and outputs) and the per-version statistics of <see cref="Inference.ModelStatistics"/>;
/// over REST and gRPC (<c>ModelConfig</c>, <c>ModelStatistics</c>).
/// </summary>
public static class TritonExtensions
{
    /// <summary>The extensions the server metadata lists; perf_analyzer reads statistics only from servers that list them.</summary>
    public static readonly string[] Names = ["model_configuration", "statistics"];

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
        // As Triton writes it: protobuf's JSON with the proto's field names (int64 dims as strings).
        return TypedResults.Text(Json.Format(Config(lease.Model, batchers, options.Value.Predict)), "application/json");
    }

    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true).WithFormatDefaultValues(true));

    /// <summary>
    /// The model's configuration as Triton states it: batched (<c>max_batch_size</c> &gt; 0, dims per
    /// sample) where the dynamic batcher takes the model and every output's first dimension is the
    /// batch too; else <c>max_batch_size</c> 0 and whole shapes.
    /// </summary>
    public static ModelConfig Config(ServedModel model, PredictBatchers batchers, PredictOptions options)
    {
        var batched = Batched(model, batchers);
        var skip = batched ? 1 : 0;
        var config = new ModelConfig
        {
            Name = model.Name,
            Platform = OpenInferenceApi.Platform,
            Backend = "onnxruntime",
            MaxBatchSize = batched ? options.MaxBatchSize : 0,
            Input =
            {
                model.Descriptor.Inputs.Select(t => new ModelInput
                {
                    Name = t.Name, DataType = DataType(model, t), Dims = { t.Shape.Skip(skip) }, Format = Format(model, t, t.Shape.Count - skip),
                }),
            },
            Output = { model.Descriptor.Outputs.Select(t => new ModelOutput { Name = t.Name, DataType = DataType(model, t), Dims = { t.Shape.Skip(skip) } }) },
            InstanceGroup =
            {
                new ModelInstanceGroup
                {
                    Name = model.Name, Count = 1,
                    Kind = model.Onnx.ExecutionProvider == "CUDA" ? ModelInstanceGroup.Types.Kind.Gpu : ModelInstanceGroup.Types.Kind.Cpu,
                },
            },
        };
        if (batched) config.DynamicBatching = new ModelDynamicBatching { MaxQueueDelayMicroseconds = (ulong)options.MaxQueueDelayMilliseconds * 1000 };
        return config;
    }

    /// <summary>
    /// The image input's layout, where it is one image a sample (three dims), as Triton states it
    /// and its image_client reads it to lay out what it sends; other inputs have none.
    /// </summary>
    private static ModelInput.Types.Format Format(ServedModel model, TensorDescriptor tensor, int dims) =>
        tensor.Name != model.Preprocessing.Input || dims != 3 ? ModelInput.Types.Format.None
        : model.Preprocessing.Layout == "NHWC" ? ModelInput.Types.Format.Nhwc : ModelInput.Types.Format.Nchw;

    /// <summary>Whether Triton's clients see the model as batching (<c>max_batch_size</c> &gt; 0): the batcher takes it and every output's first dimension is the batch.</summary>
    public static bool Batched(ServedModel model, PredictBatchers batchers) =>
        batchers.Batches(model) && model.Descriptor.Outputs.All(o => o.Shape is [-1, ..]);

    private static DataType DataType(ServedModel model, TensorDescriptor tensor) =>
        DataTypes.FindValueByName("TYPE_" + OpenInferenceApi.DataType(model, tensor)) is { } value ? (DataType)value.Number : Grpc.DataType.TypeInvalid;

    private static readonly Google.Protobuf.Reflection.EnumDescriptor DataTypes =
        GrpcPredictV2Reflection.Descriptor.EnumTypes.Single(e => e.Name == nameof(Grpc.DataType));

    public static IResult ModelStatistics(string name, string? version, ModelStore store) =>
        TypedResults.Json(TritonJson.Of(Statistics(store, name, version)));

    public static IResult AllStatistics(ModelStore store) => TypedResults.Json(TritonJson.Of(Statistics(store, "", null)));

    /// <summary>The statistics of one model at the version asked for, or of every served model where no name is given.</summary>
    public static ModelStatisticsResponse Statistics(ModelStore store, string name, string? version)
    {
        if (name.Length > 0)
        {
            using var lease = OpenInferenceApi.Lease(store, name, version);
            return new ModelStatisticsResponse { ModelStats = { Of(lease.Model) } };
        }
        var all = new ModelStatisticsResponse();
        foreach (var descriptor in store.List())
        {
            try
            {
                using var lease = store.Lease(descriptor.Name);
                all.ModelStats.Add(Of(lease.Model));
            }
            catch (Errors.ProblemException) { } // deleted since the list was taken
        }
        return all;
    }

    private static Grpc.ModelStatistics Of(ServedModel model) => model.Statistics.ToTriton(model.Name, model.Version.Name);
}
