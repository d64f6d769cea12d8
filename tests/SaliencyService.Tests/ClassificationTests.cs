using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Api.OpenInference;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Triton's classification extension, as its image_client asks for it (<c>class_count</c>): each
/// sample's top classes as "value:index:label", checked against PyTorch's outputs for the fixture
/// inputs, over JSON, the binary extension and gRPC; and the image input's format in the model
/// configuration, which image_client reads to lay out what it sends.
/// </summary>
public sealed class ClassificationTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>, IDisposable
{
    private readonly GrpcChannel _channel = GrpcChannel.ForAddress("http://localhost:5081",
        new GrpcChannelOptions { HttpHandler = service.Factory.Server.CreateHandler() });

    public void Dispose() => _channel.Dispose();

    private static readonly string[] Stems = ["input0", "input1"];

    [Theory]
    [InlineData("mini_resnet", 3)]
    [InlineData("mini_mobilenet", 4)]
    [InlineData("seed_cnn", 1)]
    public async Task Json_and_binary_answers_give_each_samples_top_classes(string model, int count)
    {
        var (input, output, batch) = await BatchAsync(model);
        foreach (var binary in new[] { false, true })
        {
            var request = new JsonObject
            {
                ["inputs"] = new JsonArray(new JsonObject
                {
                    ["name"] = input, ["shape"] = new JsonArray(batch.Shape.Select(d => (JsonNode)d).ToArray()), ["datatype"] = "FP32",
                    ["data"] = new JsonArray(batch.Data.Select(v => (JsonNode)v).ToArray()),
                }),
                ["outputs"] = new JsonArray(new JsonObject { ["name"] = output, ["parameters"] = new JsonObject { ["classification"] = count, ["binary_data"] = binary } }),
            };
            var response = await service.Client.PostAsJsonAsync($"/v2/models/{model}/infer", request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadAsByteArrayAsync();
            var headerLength = binary ? int.Parse(response.Headers.GetValues(V2Call.HeaderLength).Single()) : body.Length;
            var answer = JsonNode.Parse(body.AsSpan(0, headerLength))!["outputs"]![0]!;
            Assert.Equal("BYTES", (string)answer["datatype"]!);
            Assert.Equal([Stems.Length, count], answer["shape"]!.AsArray().Select(d => (long)d!));
            var strings = binary ? Deserialize(body.AsSpan(headerLength)) : answer["data"]!.AsArray().Select(s => (string)s!).ToArray();
            if (binary) Assert.Equal(body.Length - headerLength, (long)answer["parameters"]!["binary_data_size"]!);
            AssertTopClasses(model, strings, count);
        }
    }

    [Fact]
    public async Task Grpc_answers_the_top_classes_in_raw_contents()
    {
        var (input, output, batch) = await BatchAsync("mini_resnet");
        var request = new ModelInferRequest { ModelName = "mini_resnet" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = input, Datatype = "FP32", Shape = { batch.Shape } });
        request.RawInputContents.Add(ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(batch.Data.AsSpan())));
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = output, Parameters = { ["classification"] = new InferParameter { Int64Param = 2 } } });
        var response = await new GRPCInferenceService.GRPCInferenceServiceClient(_channel).ModelInferAsync(request);
        Assert.Equal("BYTES", response.Outputs[0].Datatype);
        Assert.Equal([2L, 2L], response.Outputs[0].Shape);
        AssertTopClasses("mini_resnet", Deserialize(response.RawOutputContents[0].Span), 2);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    [InlineData("\"3\"")]
    [InlineData("2.5")]
    public async Task A_count_that_is_not_a_positive_integer_is_a_400(string count)
    {
        var (input, output, batch) = await BatchAsync("mini_resnet");
        var data = string.Join(",", batch.Data.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        var json = "{\"inputs\": [{\"name\": \"" + input + "\", \"shape\": [" + string.Join(",", batch.Shape) + "], \"datatype\": \"FP32\", \"data\": [" + data + "]}], "
                   + "\"outputs\": [{\"name\": \"" + output + "\", \"parameters\": {\"classification\": " + count + "}}]}";
        var response = await service.Client.PostAsync("/v2/models/mini_resnet/infer", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("classification", (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!);

        var grpc = new ModelInferRequest { ModelName = "mini_resnet" };
        grpc.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = input, Datatype = "FP32", Shape = { batch.Shape }, Contents = new InferTensorContents { Fp32Contents = { batch.Data } } });
        grpc.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = output, Parameters = { ["classification"] = new InferParameter { StringParam = count } } });
        var refused = await Assert.ThrowsAsync<RpcException>(() => new GRPCInferenceService.GRPCInferenceServiceClient(_channel).ModelInferAsync(grpc).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
    }

    [Fact]
    public async Task The_config_states_the_image_inputs_layout_and_the_server_lists_the_extension()
    {
        foreach (var (model, format) in new[] { ("mini_resnet", "FORMAT_NCHW"), ("seed_cnn", "FORMAT_NHWC") })
        {
            var config = JsonNode.Parse(await service.Client.GetStringAsync($"/v2/models/{model}/config"))!;
            Assert.Equal(format, (string)config["input"]![0]!["format"]!);
        }
        var extensions = JsonNode.Parse(await service.Client.GetStringAsync("/v2"))!["extensions"]!.AsArray().Select(e => (string)e!);
        Assert.Contains("classification", extensions);
    }

    [Fact]
    public void Without_a_batch_the_whole_output_is_ranked_as_Tritons_documentation_shows()
    {
        // The extension's own example: [1.1, 3.3, 0.5, 2.4], two classes; std::to_string's six decimals.
        var floats = Classification.Of(new NamedTensor("out", TensorElementType.Float, [1, 4], new[] { 1.1f, 3.3f, 0.5f, 2.4f }), 2, batched: false, labels: null);
        Assert.Equal([2L], floats.Shape);
        Assert.Equal(["3.300000:1", "2.400000:3"], (string[])floats.Data);

        var ints = Classification.Of(new NamedTensor("out", TensorElementType.Int32, [4], new[] { 1, 5, 10, 4 }), 9, batched: false, labels: ["a", "b", "c"]);
        Assert.Equal(["10:2:c", "5:1:b", "4:3", "1:0:a"], (string[])ints.Data); // all four (of nine asked); index 3 has no label

        var ties = Classification.Of(new NamedTensor("out", TensorElementType.Double, [2, 3], new[] { 1.0, double.NaN, 1.0, 0.0, 2.0, 2.0 }), 3, batched: true, labels: null);
        Assert.Equal([2L, 3L], ties.Shape);
        Assert.Equal(["1.000000:0", "1.000000:2", "NaN:1", "2.000000:1", "2.000000:2", "0.000000:0"], (string[])ties.Data);
    }

    /// <summary>Each sample's classes: the value PyTorch computed at each index, highest first, and no other class above the last.</summary>
    private static void AssertTopClasses(string model, IReadOnlyList<string> strings, int count)
    {
        Assert.Equal(Stems.Length * count, strings.Count);
        var labels = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture(model, "model.json")))!["labels"]!.AsArray().Select(l => (string)l!).ToArray();
        for (var s = 0; s < Stems.Length; s++)
        {
            var reference = ReferenceCases.Get(model, Stems[s]).Outputs;
            var classes = strings.Skip(s * count).Take(count).Select(c => c.Split(':')).ToArray();
            var indices = classes.Select(c => int.Parse(c[1])).ToArray();
            var values = classes.Select(c => double.Parse(c[0], CultureInfo.InvariantCulture)).ToArray();
            Assert.All(classes, c => Assert.Equal(labels[int.Parse(c[1])], c[2])); // the manifest's label
            for (var k = 0; k < count; k++)
            {
                Assert.Equal(reference[indices[k]], values[k], 1e-4);
                if (k > 0) Assert.True(values[k] <= values[k - 1]);
            }
            Assert.All(Enumerable.Range(0, reference.Length).Except(indices), other => Assert.True(reference[other] <= values[^1] + 1e-4));
        }
    }

    private async Task<(string Input, string Output, FloatTensor Batch)> BatchAsync(string model)
    {
        var metadata = JsonNode.Parse(await service.Client.GetStringAsync($"/v2/models/{model}"))!;
        var samples = Stems.Select(stem => Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")), long.MaxValue)).ToArray();
        var shape = new long[] { samples.Length }.Concat(samples[0].Shape.Skip(samples[0].Shape.Length == 4 ? 1 : 0)).ToArray();
        return ((string)metadata["inputs"]![0]!["name"]!, (string)metadata["outputs"]![0]!["name"]!,
            new FloatTensor(samples.SelectMany(t => t.Data).ToArray(), shape));
    }

    /// <summary>BYTES elements as the binary extension and gRPC carry them: a 4-byte little-endian length, then the bytes.</summary>
    private static string[] Deserialize(ReadOnlySpan<byte> raw)
    {
        var strings = new List<string>();
        while (raw.Length > 0)
        {
            var length = BinaryPrimitives.ReadInt32LittleEndian(raw);
            strings.Add(Encoding.UTF8.GetString(raw.Slice(4, length)));
            raw = raw[(4 + length)..];
        }
        return strings.ToArray();
    }
}
