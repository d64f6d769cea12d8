using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Grpc.Net.Client;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The Open Inference Protocol's GRPCInferenceService, called through gRPC's generated client:
/// metadata, readiness, ModelInfer with typed and raw contents against PyTorch's outputs, and the
/// protocol's status codes; beside it gRPC's health protocol and server reflection.
/// </summary>
public sealed class GrpcInferenceTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>, IDisposable
{
    private readonly GrpcChannel _channel = GrpcChannel.ForAddress("http://localhost:5081", // the gRPC port (appsettings)
        new GrpcChannelOptions { HttpHandler = service.Factory.Server.CreateHandler() });

    private GRPCInferenceService.GRPCInferenceServiceClient Client => new(_channel);

    public void Dispose() => _channel.Dispose();

    [Fact]
    public async Task Server_and_model_metadata_and_readiness()
    {
        Assert.True((await Client.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.True((await Client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        Assert.Contains("binary_tensor_data", (await Client.ServerMetadataAsync(new ServerMetadataRequest())).Extensions);
        Assert.True((await Client.ModelReadyAsync(new ModelReadyRequest { Name = "mini_resnet" })).Ready);

        var metadata = await Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "mini_resnet" });
        Assert.Equal("onnxruntime_onnx", metadata.Platform);
        Assert.Equal("FP32", metadata.Inputs[0].Datatype);
        Assert.Equal(-1, metadata.Inputs[0].Shape[0]);
        Assert.True((await Client.ModelReadyAsync(new ModelReadyRequest { Name = "mini_resnet", Version = metadata.Versions[0] })).Ready);

        var missing = await Assert.ThrowsAsync<RpcException>(() => Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "no-such-model" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        var version = await Assert.ThrowsAsync<RpcException>(() => Client.ModelReadyAsync(new ModelReadyRequest { Name = "mini_resnet", Version = "7" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, version.StatusCode);
    }

    [Fact]
    public async Task The_grpc_health_service_says_serving_for_the_server_the_inference_service_and_liveness()
    {
        var health = new Health.HealthClient(_channel);
        foreach (var name in new[] { "", "inference.GRPCInferenceService", "live" })
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest { Service = name })).Status);

        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "no.Such" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode); // as the health protocol asks

        using var watch = health.Watch(new HealthCheckRequest());
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);
    }

    [Theory]
    [InlineData("http://gateway.example:8081")] // through a gateway (deploy/nginx listens on 8081)
    [InlineData("http://localhost:9000")]       // a port-forward, or the container's port published as another
    [InlineData("http://saliency.models.example.com")]
    public async Task Calls_are_answered_whatever_port_the_client_names(string address)
    {
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = service.Factory.Server.CreateHandler() });
        Assert.True((await new GRPCInferenceService.GRPCInferenceServiceClient(channel).ModelReadyAsync(new ModelReadyRequest { Name = "mini_resnet" })).Ready);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest())).Status);
    }

    [Fact]
    public async Task ModelConfig_gives_Tritons_configuration_as_the_REST_route_does()
    {
        var config = (await Client.ModelConfigAsync(new ModelConfigRequest { Name = "mini_resnet" })).Config;
        var metadata = await Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "mini_resnet" });
        Assert.Equal(16, config.MaxBatchSize);
        Assert.NotNull(config.DynamicBatching);
        Assert.Equal(metadata.Inputs.Select(i => i.Name), config.Input.Select(i => i.Name));
        Assert.Equal(metadata.Inputs[0].Shape.Skip(1), config.Input[0].Dims);
        Assert.Equal(DataType.TypeFp32, config.Input[0].DataType);
        Assert.Equal(metadata.Outputs[0].Shape.Skip(1), config.Output[0].Dims);

        var rest = System.Text.Json.Nodes.JsonNode.Parse(await service.Client.GetStringAsync("/v2/models/mini_resnet/config"))!;
        Assert.Equal(config.MaxBatchSize, (int)rest["max_batch_size"]!);
        Assert.Equal("TYPE_FP32", (string)rest["input"]![0]!["data_type"]!);

        var missing = await Assert.ThrowsAsync<RpcException>(() => Client.ModelConfigAsync(new ModelConfigRequest { Name = "no-such-model" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Reflection_lists_the_inference_and_health_services()
    {
        var reflection = new ServerReflection.ServerReflectionClient(_channel);
        using var call = reflection.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("inference.GRPCInferenceService", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }

    public static IEnumerable<object[]> Cases => ReferenceCases.AsTheoryData();

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ModelInfer_gives_the_reference_outputs_from_typed_or_raw_contents(string model, string stem)
    {
        var c = ReferenceCases.Get(model, stem);
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")), long.MaxValue);
        var metadata = await Client.ModelMetadataAsync(new ModelMetadataRequest { Name = model });
        var outputName = metadata.Outputs[0].Name;

        var typed = Request(model, tensor, metadata.Inputs[0].Name);
        typed.Inputs[0].Contents = new InferTensorContents { Fp32Contents = { tensor.Data } };
        typed.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = outputName });
        var raw = Request(model, tensor, metadata.Inputs[0].Name);
        var bytes = new byte[tensor.Data.Length * 4];
        Buffer.BlockCopy(tensor.Data, 0, bytes, 0, bytes.Length);
        raw.RawInputContents.Add(ByteString.CopyFrom(bytes));

        foreach (var request in new[] { typed, raw })
        {
            var response = await Client.ModelInferAsync(request);
            Assert.Equal("17", response.Id);
            var index = response.Outputs.Select(o => o.Name).ToList().IndexOf(outputName);
            Assert.Equal("FP32", response.Outputs[index].Datatype);
            var values = new float[response.RawOutputContents[index].Length / 4];
            Buffer.BlockCopy(response.RawOutputContents[index].ToByteArray(), 0, values, 0, values.Length * 4);
            var scale = Math.Max(1e-6, c.Outputs.Max(Math.Abs));
            Assert.Equal(c.Outputs.Length, values.Length);
            Assert.True(c.Outputs.Zip(values, (e, a) => Math.Abs(e - a)).Max() <= 1e-4 * scale);
        }
    }

    [Fact]
    public async Task Bad_requests_get_the_protocols_status_codes()
    {
        var metadata = await Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "mini_resnet" });
        var input = metadata.Inputs[0];
        var shape = input.Shape.Select(d => d < 0 ? 1 : d).ToArray();
        var count = (int)shape.Aggregate(1L, (a, b) => a * b);

        async Task<StatusCode> Fails(ModelInferRequest request) =>
            (await Assert.ThrowsAsync<RpcException>(() => Client.ModelInferAsync(request).ResponseAsync)).StatusCode;
        ModelInferRequest Valid() => new()
        {
            ModelName = "mini_resnet",
            Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = input.Name, Datatype = "FP32", Shape = { shape }, Contents = new InferTensorContents { Fp32Contents = { new float[count] } } } },
        };

        Assert.NotEmpty((await Client.ModelInferAsync(Valid())).RawOutputContents);
        var unknownModel = Valid();
        unknownModel.ModelName = "no-such-model";
        Assert.Equal(StatusCode.NotFound, await Fails(unknownModel));
        var wrongType = Valid();
        wrongType.Inputs[0].Datatype = "INT64";
        Assert.Equal(StatusCode.InvalidArgument, await Fails(wrongType));
        var short_ = Valid();
        short_.Inputs[0].Contents.Fp32Contents.RemoveAt(0);
        Assert.Equal(StatusCode.InvalidArgument, await Fails(short_));
        var rawAndTyped = Valid();
        rawAndTyped.RawInputContents.Add(ByteString.CopyFrom(new byte[count * 4]));
        Assert.Equal(StatusCode.InvalidArgument, await Fails(rawAndTyped));
        var rawTooShort = Valid();
        rawTooShort.Inputs[0].Contents = null;
        rawTooShort.RawInputContents.Add(ByteString.CopyFrom(new byte[12]));
        Assert.Equal(StatusCode.InvalidArgument, await Fails(rawTooShort));
        var none = Valid();
        none.Inputs.Clear();
        Assert.Equal(StatusCode.InvalidArgument, await Fails(none));
        var unknownOutput = Valid();
        unknownOutput.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "nope" });
        Assert.Equal(StatusCode.InvalidArgument, await Fails(unknownOutput));
        var nan = Valid();
        nan.Inputs[0].Contents.Fp32Contents[0] = float.NaN;
        Assert.Equal(StatusCode.InvalidArgument, await Fails(nan));
    }

    /// <summary>
    /// The real server: Kestrel's h2c port beside the REST one, both answering, gRPC's health through
    /// the port, and no warning at start (Kestrel warned that it overrode the URLs when the ports were
    /// explicit endpoints).
    /// </summary>
    [Fact]
    public async Task A_real_process_serves_grpc_on_its_own_h2c_port()
    {
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var process = await ServiceProcess.StartAsync(store);
            using var channel = GrpcChannel.ForAddress(process.GrpcAddress);
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            Assert.True((await client.ServerReadyAsync(new ServerReadyRequest())).Ready);
            Assert.Equal("saliency-service", (await client.ServerMetadataAsync(new ServerMetadataRequest())).Name);
            Assert.Equal(System.Net.HttpStatusCode.OK, (await process.Client.GetAsync("/v2/health/live")).StatusCode);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest())).Status);
            Assert.DoesNotContain("Overriding address", process.Output);
        }
        finally
        {
            ServiceFactory.DeleteServiceFolder(store);
        }
    }

    private static ModelInferRequest Request(string model, FloatTensor tensor, string input) => new()
    {
        ModelName = model,
        Id = "17",
        Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = input, Datatype = "FP32", Shape = { tensor.Shape } } },
    };
}
