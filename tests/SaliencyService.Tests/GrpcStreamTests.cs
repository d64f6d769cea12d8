using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Triton's ModelStreamInfer, as tritonclient's start_stream and perf_analyzer --streaming call it:
/// every request on the stream answered (matched by id, with PyTorch's outputs), a failing one by
/// its error message without ending the stream; and the API key on the calls that run a model only,
/// so gRPC health probes need none.
/// </summary>
public sealed class GrpcStreamTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    [Fact]
    public async Task Each_request_is_answered_and_a_failure_does_not_end_the_stream()
    {
        using var channel = Channel(service.Factory);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var requests = new Dictionary<string, (string Model, string Stem)>();
        using var call = client.ModelStreamInfer();
        for (var i = 0; i < 12; i++)
        {
            var (model, stem) = i % 2 == 0 ? ("mini_resnet", "input0") : ("mini_mobilenet", "input1");
            var request = await RequestAsync(client, model, stem);
            request.Id = $"r{i}";
            if (i == 5) request.ModelName = "no-such-model";
            requests[request.Id] = (request.ModelName, stem);
            await call.RequestStream.WriteAsync(request);
        }
        await call.RequestStream.CompleteAsync();

        var answered = new HashSet<string>();
        await foreach (var answer in call.ResponseStream.ReadAllAsync())
        {
            var id = answer.InferResponse.Id;
            Assert.True(answered.Add(id), $"{id} answered twice");
            var (model, stem) = requests[id];
            if (model == "no-such-model")
            {
                Assert.Contains("no-such-model", answer.ErrorMessage);
                continue;
            }
            Assert.Equal("", answer.ErrorMessage);
            var expected = ReferenceCases.Get(model, stem).Outputs;
            var values = new float[answer.InferResponse.RawOutputContents[0].Length / 4];
            Buffer.BlockCopy(answer.InferResponse.RawOutputContents[0].ToByteArray(), 0, values, 0, values.Length * 4);
            Assert.Equal(expected.Length, values.Length);
            Assert.True(expected.Zip(values, (e, a) => Math.Abs(e - a)).Max() <= 1e-4 * Math.Max(1e-6, expected.Max(Math.Abs)));
        }
        Assert.Equal(requests.Keys.Order(), answered.Order());
    }

    [Fact]
    public async Task A_stream_of_more_requests_than_the_queue_holds_is_answered_without_a_refusal()
    {
        using var channel = Channel(service.Factory);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var request = await RequestAsync(client, "mini_resnet", "input0");
        using var call = client.ModelStreamInfer();
        const int Count = 300; // Saliency:Predict:MaxQueued is 64: all at once, most would be refused
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < Count; i++) await call.RequestStream.WriteAsync(request);
            await call.RequestStream.CompleteAsync();
        });
        var errors = new List<string>();
        var answered = 0;
        await foreach (var answer in call.ResponseStream.ReadAllAsync())
        {
            answered++;
            if (answer.ErrorMessage.Length > 0) errors.Add(answer.ErrorMessage);
        }
        await sending;
        Assert.Empty(errors);
        Assert.Equal(Count, answered);
    }

    [Fact]
    public async Task The_inference_key_guards_inference_calls_and_streams_but_not_health()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:ApiKey"] = "k", ["Saliency:ApiKeyForInference"] = "true" });
        using var http = factory.CreateClient();
        http.DefaultRequestHeaders.Add("X-Api-Key", "k");
        await Http.ImportFixtureAsync(http, "mini_resnet");
        using var channel = Channel(factory);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);

        // A Kubernetes grpc probe or a load balancer's health check sends no metadata; readiness and metadata are open, as on REST.
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest())).Status);
        Assert.True((await client.ServerReadyAsync(new ServerReadyRequest())).Ready);

        var request = await RequestAsync(client, "mini_resnet", "input0");
        var unary = await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, unary.StatusCode);
        using (var stream = client.ModelStreamInfer())
            await AssertRefusedAsync(stream, request);

        var key = new Metadata { { "x-api-key", "k" } };
        Assert.NotEmpty((await client.ModelInferAsync(request, key)).RawOutputContents);
        using var keyed = client.ModelStreamInfer(key);
        await keyed.RequestStream.WriteAsync(request);
        await keyed.RequestStream.CompleteAsync();
        Assert.True(await keyed.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal("", keyed.ResponseStream.Current.ErrorMessage);
    }

    /// <summary>
    /// The stream is answered Unauthenticated. The server refuses it as it starts, so the request's
    /// write may meet a call already ended, and grpc-dotnet then throws Cancelled where the status
    /// has not arrived yet; the response stream carries the status either way.
    /// </summary>
    private static async Task AssertRefusedAsync(AsyncDuplexStreamingCall<ModelInferRequest, ModelStreamInferResponse> stream, ModelInferRequest request)
    {
        try
        {
            await stream.RequestStream.WriteAsync(request);
            await stream.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
        }
        var refused = await Assert.ThrowsAsync<RpcException>(() => stream.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
    }

    [Fact]
    public async Task A_stream_the_client_cancels_mid_way_is_no_error_and_the_next_one_is_answered()
    {
        // Kestrel itself: a reset HTTP/2 stream surfaces there as an IOException on the next read.
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var process = await ServiceProcess.StartAsync(store);
            await Http.ImportFixtureAsync(process.Client, "mini_resnet");
            using var channel = GrpcChannel.ForAddress(process.GrpcAddress);
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var request = await RequestAsync(client, "mini_resnet", "input0");
            using (var cancel = new CancellationTokenSource())
            using (var call = client.ModelStreamInfer(cancellationToken: cancel.Token))
            {
                for (var i = 0; i < 8; i++) await call.RequestStream.WriteAsync(request);
                Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
                cancel.Cancel(); // still sending: the request side is reset, not completed
                var cancelled = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
                Assert.Equal(StatusCode.Cancelled, cancelled.StatusCode);
            }

            using var next = client.ModelStreamInfer();
            await next.RequestStream.WriteAsync(request);
            await next.RequestStream.CompleteAsync();
            Assert.Equal(1, await next.ResponseStream.ReadAllAsync().CountAsync());
            for (var wait = 0; wait < 10 && !process.Output.Contains("Unhandled error"); wait++) await Task.Delay(200);
            Assert.DoesNotContain("Unhandled error", process.Output);
        }
        finally
        {
            if (Directory.Exists(store)) Directory.Delete(store, recursive: true);
        }
    }

    private static GrpcChannel Channel(ServiceFactory factory) =>
        GrpcChannel.ForAddress("http://localhost:5081", new GrpcChannelOptions { HttpHandler = factory.Server.CreateHandler() });

    private static async Task<ModelInferRequest> RequestAsync(GRPCInferenceService.GRPCInferenceServiceClient client, string model, string stem)
    {
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")), long.MaxValue);
        var metadata = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = model });
        var request = new ModelInferRequest { ModelName = model };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = metadata.Inputs[0].Name, Datatype = "FP32", Shape = { tensor.Shape } });
        request.RawInputContents.Add(ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tensor.Data.AsSpan())));
        return request;
    }
}
