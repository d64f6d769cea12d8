using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Api.OpenInference;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference.Grpc;

/// <summary>
/// The Open Inference Protocol's <c>GRPCInferenceService</c> on its own h2c port: the same models,
/// checks, batcher and queues as REST. Inputs come as typed contents or <c>raw_input_contents</c>;
/// outputs go back as <c>raw_output_contents</c>, as Triton answers.
/// </summary>
public sealed class OpenInferenceGrpcService(ModelStore store, OpenInferenceRunner runner, HealthCheckService health, PredictBatchers batchers,
    IOptions<SaliencyOptions> options, ILogger<OpenInferenceGrpcService> logger)
    : GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override async Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        new() { Ready = await Readiness.IsReadyAsync(health, context.CancellationToken) };

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        using var lease = OpenInferenceApi.Lease(store, request.Name, request.Version);
        return Task.FromResult(new ModelReadyResponse { Ready = true });
    }

    public override Task<ModelConfigResponse> ModelConfig(ModelConfigRequest request, ServerCallContext context)
    {
        using var lease = OpenInferenceApi.Lease(store, request.Name, request.Version);
        return Task.FromResult(new ModelConfigResponse { Config = TritonExtensions.Config(lease.Model, batchers, options.Value.Predict) });
    }

    public override Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context) =>
        Task.FromResult(TritonExtensions.Statistics(store, request.Name, request.Version));

    public override Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context) =>
        Task.FromResult(RepositoryExtension.Index(store, request.Ready));

    public override async Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context)
    {
        await RepositoryExtension.LoadAsync(store, request.ModelName, request.Parameters.Keys);
        return new RepositoryModelLoadResponse();
    }

    public override Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context) =>
        throw RepositoryExtension.UnloadRefused(request.ModelName);

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context)
    {
        var metadata = OpenInferenceApi.ServerMetadata().Value!;
        return Task.FromResult(new ServerMetadataResponse { Name = metadata.Name, Version = metadata.Version, Extensions = { metadata.Extensions } });
    }

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context)
    {
        var metadata = OpenInferenceApi.ModelMetadata(request.Name, request.Version, store).Value!;
        ModelMetadataResponse.Types.TensorMetadata Tensor(MetadataTensor t) => new() { Name = t.Name, Datatype = t.Datatype, Shape = { t.Shape } };
        return Task.FromResult(new ModelMetadataResponse
        {
            Name = metadata.Name, Versions = { metadata.Versions }, Platform = metadata.Platform,
            Inputs = { metadata.Inputs.Select(Tensor) }, Outputs = { metadata.Outputs.Select(Tensor) },
        });
    }

    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        using var lease = OpenInferenceApi.Lease(store, request.ModelName, request.ModelVersion);
        var model = lease.Model;
        var inputs = Inputs(request, model);
        var available = model.Descriptor.Outputs.Select(o => o.Name).ToArray();
        var outputs = request.Outputs.Count == 0 ? available : request.Outputs.Select(o => o.Name).ToArray();
        foreach (var name in outputs.Where(n => !available.Contains(n)))
            throw new InvalidArgumentException($"Unknown output '{name}'; the outputs are: {string.Join(", ", available)}.");
        var classifications = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var output in request.Outputs)
            if (Classification.Count(output.Parameters, output.Name) is { } classes) classifications[output.Name] = classes;

        var results = Classification.Apply(await runner.RunAsync(model, new InferWork(inputs, outputs), context.CancellationToken),
            classifications, model, batchers);
        var response = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = model.Version.Name, Id = request.Id };
        foreach (var output in results)
        {
            response.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = V2DataTypes.Name(output.Type), Shape = { output.Shape } });
            response.RawOutputContents.Add(ByteString.CopyFrom(V2TensorData.Raw(output)));
        }
        return response;
    }

    /// <summary>
    /// The requests on a stream run side by side, as Triton runs them, up to a full batch of them at
    /// a time; the stream is read on as they complete, so a client that sends hundreds at once is
    /// slowed down rather than refused by the shared queue. Each is answered as it completes (its id
    /// says which); one that fails is answered with its error and the stream goes on. The stream ends
    /// once the client has closed its side and every answer is written.
    /// </summary>
    public override async Task ModelStreamInfer(IAsyncStreamReader<ModelInferRequest> requestStream, IServerStreamWriter<ModelStreamInferResponse> responseStream,
        ServerCallContext context)
    {
        using var writes = new SemaphoreSlim(1);
        using var slots = new SemaphoreSlim(Math.Max(1, options.Value.Predict.MaxBatchSize));
        var running = new List<Task>();
        try
        {
            while (true)
            {
                await slots.WaitAsync(context.CancellationToken);
                if (!await requestStream.MoveNext(context.CancellationToken)) break;
                running.RemoveAll(t => t.IsCompletedSuccessfully); // a long stream keeps only what is in flight
                running.Add(AnswerAsync(requestStream.Current));
            }
        }
        finally
        {
            // No answer outlives the call: each is written, or dropped with a cancelled call.
            try
            {
                await Task.WhenAll(running);
            }
            catch (Exception) when (context.CancellationToken.IsCancellationRequested) { }
        }

        async Task AnswerAsync(ModelInferRequest request)
        {
            ModelStreamInferResponse answer;
            try
            {
                answer = new() { InferResponse = await ModelInfer(request, context) };
            }
            catch (Exception e) when (!context.CancellationToken.IsCancellationRequested)
            {
                var status = e is RpcException rpc ? rpc.Status : GrpcErrorInterceptor.StatusOf(e, context, logger);
                answer = new()
                {
                    ErrorMessage = status.Detail,
                    InferResponse = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = request.ModelVersion, Id = request.Id },
                };
            }
            await writes.WaitAsync(context.CancellationToken);
            try
            {
                await responseStream.WriteAsync(answer, context.CancellationToken);
            }
            finally
            {
                writes.Release();
                slots.Release();
            }
        }
    }

    private List<NamedTensor> Inputs(ModelInferRequest request, ServedModel model)
    {
        var raw = request.RawInputContents;
        if (raw.Count > 0 && raw.Count != request.Inputs.Count)
            throw new InvalidArgumentException($"raw_input_contents has {raw.Count} entries for {request.Inputs.Count} inputs.");
        var inputs = new List<NamedTensor>();
        foreach (var (input, index) in request.Inputs.Select((input, index) => (input, index)))
        {
            var (name, type, shape, count) = V2Inputs.Check(model, input.Name, input.Datatype, input.Shape, options.Value.MaxTensorElements, inputs);
            if (raw.Count > 0 && input.Contents is not null)
                throw new InvalidArgumentException($"Input '{name}' has contents while raw_input_contents is used.");
            var data = raw.Count > 0 ? V2Inputs.FromBytes(name, type, count, raw[index].Span) : Typed(input.Contents, name, type, count);
            inputs.Add(new NamedTensor(name, type, shape, data));
        }
        V2Inputs.CheckComplete(model, inputs);
        return inputs;
    }

    /// <summary>The typed contents of an input, converted to its element type with range checks.</summary>
    private static Array Typed(InferTensorContents? contents, string name, TensorElementType type, long count)
    {
        if (contents is null) throw new InvalidArgumentException($"Input '{name}' has neither contents nor raw_input_contents.");
        Array data = type switch
        {
            TensorElementType.Bool => contents.BoolContents.Select(b => (byte)(b ? 1 : 0)).ToArray(),
            TensorElementType.Int8 => contents.IntContents.Select(v => checked((sbyte)v)).ToArray(),
            TensorElementType.Int16 => contents.IntContents.Select(v => checked((short)v)).ToArray(),
            TensorElementType.Int32 => contents.IntContents.ToArray(),
            TensorElementType.Int64 => contents.Int64Contents.ToArray(),
            TensorElementType.UInt8 => contents.UintContents.Select(v => checked((byte)v)).ToArray(),
            TensorElementType.UInt16 => contents.UintContents.Select(v => checked((ushort)v)).ToArray(),
            TensorElementType.UInt32 => contents.UintContents.ToArray(),
            TensorElementType.UInt64 => contents.Uint64Contents.ToArray(),
            TensorElementType.Float => contents.Fp32Contents.ToArray(),
            TensorElementType.Double => contents.Fp64Contents.ToArray(),
            _ => throw new InvalidArgumentException($"Input '{name}' is {V2DataTypes.Name(type)}, which travels as raw_input_contents only."),
        };
        if (data.LongLength != count)
            throw new InvalidArgumentException($"Input '{name}' has {data.LongLength} elements in its contents; its shape holds {count}.");
        V2Inputs.CheckFinite(data, name);
        return data;
    }
}
