using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Tests;

/// <summary>
/// The Open Inference Protocol (KServe v2) over REST, built from the spec's examples: metadata,
/// health, infer in JSON and with the binary tensor extension against PyTorch's outputs, every
/// datatype, the protocol's errors, and the explain extension against PyTorch's float64 maps.
/// </summary>
public sealed class OpenInferenceTests(FixtureModelsService service) : IClassFixture<FixtureModelsService>
{
    private HttpClient Client => service.Client;

    [Fact]
    public async Task Server_metadata_and_health()
    {
        var server = JsonNode.Parse(await Client.GetStringAsync("/v2"))!;
        Assert.Equal("saliency-service", (string)server["name"]!);
        Assert.Contains("binary_tensor_data", server["extensions"]!.AsArray().Select(e => (string)e!));
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/v2/models/mini_resnet/ready")).StatusCode);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/no-such-model/ready"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Model_metadata_names_its_tensors_and_its_version()
    {
        var metadata = JsonNode.Parse(await Client.GetStringAsync("/v2/models/mini_resnet"))!;
        Assert.Equal("onnxruntime_onnx", (string)metadata["platform"]!);
        var input = metadata["inputs"]![0]!;
        Assert.Equal("FP32", (string)input["datatype"]!);
        var descriptor = JsonNode.Parse(await Client.GetStringAsync("/v1/models/mini_resnet"))!;
        Assert.Equal(descriptor["inputs"]![0]!["shape"]!.ToJsonString(), input["shape"]!.ToJsonString());
        Assert.Equal(-1, (long)input["shape"]![0]!);

        var version = (string)metadata["versions"]![0]!;
        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync($"/v2/models/mini_resnet/versions/{version}")).StatusCode);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/mini_resnet/versions/7"), HttpStatusCode.NotFound);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/no-such-model"), HttpStatusCode.NotFound);
    }

    public static IEnumerable<object[]> Cases => ReferenceCases.AsTheoryData();

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Json_infer_gives_the_reference_outputs_flat_or_nested(string model, string stem)
    {
        var c = ReferenceCases.Get(model, stem);
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")), long.MaxValue);
        var (inputName, outputName) = await NamesAsync(model);
        foreach (var data in new JsonNode[] { Flat(tensor.Data), Nested(tensor.Data, tensor.Shape) })
        {
            var request = new JsonObject
            {
                ["id"] = "42",
                ["inputs"] = new JsonArray(new JsonObject { ["name"] = inputName, ["shape"] = Shape(tensor.Shape), ["datatype"] = "FP32", ["data"] = data }),
            };
            var response = JsonNode.Parse(await ReadOkAsync(await PostJsonAsync($"/v2/models/{model}/infer", request)))!;
            Assert.Equal("42", (string)response["id"]!);
            Assert.Equal(model, (string)response["model_name"]!);
            var output = response["outputs"]!.AsArray().Single(o => (string)o!["name"]! == outputName)!;
            Assert.Equal("FP32", (string)output["datatype"]!);
            AssertClose(c.Outputs, output["data"]!.AsArray().Select(v => (float)v!).ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Binary_infer_gives_the_reference_outputs(string model, string stem)
    {
        var c = ReferenceCases.Get(model, stem);
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, stem + ".tensor.npy")), long.MaxValue);
        var (inputName, outputName) = await NamesAsync(model);
        var raw = new byte[tensor.Data.Length * 4];
        Buffer.BlockCopy(tensor.Data, 0, raw, 0, raw.Length);
        var header = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = inputName, ["shape"] = Shape(tensor.Shape), ["datatype"] = "FP32",
                ["parameters"] = new JsonObject { ["binary_data_size"] = raw.Length },
            }),
            ["outputs"] = new JsonArray(new JsonObject { ["name"] = outputName, ["parameters"] = new JsonObject { ["binary_data"] = true } }),
        };
        var response = await PostBinaryAsync($"/v2/models/{model}/infer", header, raw);
        var (json, binary) = await SplitAsync(response);
        var output = json["outputs"]![0]!;
        Assert.Null(output["data"]);
        Assert.Equal(binary.Length, (int)output["parameters"]!["binary_data_size"]!);
        var values = new float[binary.Length / 4];
        Buffer.BlockCopy(binary, 0, values, 0, binary.Length);
        AssertClose(c.Outputs, values);
    }

    [Fact]
    public async Task Every_datatype_goes_in_and_comes_back_exactly_in_json_and_binary()
    {
        (DataType Onnx, string V2, JsonArray Values)[] types =
        [
            (DataType.Bool, "BOOL", [true, false, true]),
            (DataType.Uint8, "UINT8", [0, 7, 255]), (DataType.Uint16, "UINT16", [0, 7, 65535]),
            (DataType.Uint32, "UINT32", [0, 7, 4294967295]), (DataType.Uint64, "UINT64", [0, 7, 18446744073709551615]),
            (DataType.Int8, "INT8", [-128, 0, 127]), (DataType.Int16, "INT16", [-32768, 0, 32767]),
            (DataType.Int32, "INT32", [-2147483648, 0, 2147483647]), (DataType.Int64, "INT64", [-9223372036854775808, 0, 9223372036854775807]),
            (DataType.Float16, "FP16", [-2.5, 0, 65504]), (DataType.Float, "FP32", [-1.5, 0, 3.25]), (DataType.Double, "FP64", [-1e300, 0, 0.1]),
        ];
        var builder = new OnnxTestModel(13, [-1, 3, 4, 4]).Node("Identity", ["x"], ["y"]).Output("y");
        foreach (var (onnx, v2, _) in types)
            builder.Input(v2, onnx, -1, 3).Node("Identity", [v2], [v2 + "_out"]).Output(v2 + "_out", onnx);
        using (var form = Http.ModelForm(builder.Bytes(), "every-type"))
            Assert.Equal(HttpStatusCode.Created, (await Client.PostAsync("/v1/models?replace=true", form)).StatusCode);

        var inputs = new JsonArray(new JsonObject { ["name"] = "x", ["shape"] = new JsonArray(1, 3, 4, 4), ["datatype"] = "FP32", ["data"] = Flat(new float[48]) });
        foreach (var (_, v2, values) in types)
            inputs.Add(new JsonObject { ["name"] = v2, ["shape"] = new JsonArray(1, 3), ["datatype"] = v2, ["data"] = values.DeepClone() });

        var json = JsonNode.Parse(await ReadOkAsync(await PostJsonAsync("/v2/models/every-type/infer", new JsonObject { ["inputs"] = inputs })))!;
        foreach (var (_, v2, values) in types)
        {
            var output = json["outputs"]!.AsArray().Single(o => (string)o!["name"]! == v2 + "_out")!;
            Assert.Equal(v2, (string)output["datatype"]!);
            Assert.Equal(values.ToJsonString(), output["data"]!.ToJsonString());
        }

        // The same outputs as raw bytes: what JSON carried, in each type's little-endian layout.
        var binary = new JsonObject { ["inputs"] = inputs.DeepClone(), ["parameters"] = new JsonObject { ["binary_data_output"] = true } };
        var (header, bytes) = await SplitAsync(await PostJsonAsync("/v2/models/every-type/infer", binary));
        var offset = 0;
        foreach (var output in header["outputs"]!.AsArray())
        {
            var size = (int)output!["parameters"]!["binary_data_size"]!;
            var name = (string)output["name"]!;
            if (name != "y")
            {
                var values = types.Single(t => t.V2 + "_out" == name).Values;
                Assert.Equal(values.ToJsonString(), Decode(bytes.AsSpan(offset, size), (string)output["datatype"]!).ToJsonString());
            }
            offset += size;
        }
        Assert.Equal(bytes.Length, offset);
    }

    [Theory]
    [InlineData("{", "JSON")]
    [InlineData("""{"inputs": []}""", "no inputs")]
    [InlineData("""{"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1]}]}""", "Unknown input")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "INT64", "data": [1]}]}""", "FP32")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [1, 2]}]}""", "elements")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 5, 5], "datatype": "FP32", "data": [1]}]}""", "shape")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": "abc"}]}""", "array")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "FP32"}]}""", "data")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "STRING", "data": [1]}]}""", "datatype")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [99999999999, 99999999999], "datatype": "FP32", "data": [1]}]}""", "shape")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [-1, 3, 32, 32], "datatype": "FP32", "data": [1]}]}""", "every dimension's size")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [1]}], "outputs": [{"name": "nope"}]}""", "Unknown output")]
    [InlineData("""{"inputs": [{"name": "INPUT", "shape": [1, 3, 32, 32], "datatype": "FP32", "parameters": {"binary_data_size": 12}}]}""", "binary")]
    public async Task Bad_requests_are_400_with_the_protocols_error(string body, string mentions)
    {
        var (inputName, _) = await NamesAsync("mini_resnet");
        var metadata = JsonNode.Parse(await Client.GetStringAsync("/v2/models/mini_resnet"))!;
        var shape = metadata["inputs"]![0]!["shape"]!.AsArray().Select(d => (long)d!).ToArray();
        var fitted = body.Replace("INPUT", inputName).Replace("[1, 3, 32, 32]", $"[1, {string.Join(", ", shape[1..])}]");
        using var content = new StringContent(fitted, Encoding.UTF8, "application/json");
        var error = await AssertErrorAsync(await Client.PostAsync("/v2/models/mini_resnet/infer", content), HttpStatusCode.BadRequest);
        Assert.Contains(mentions, error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Unknown_models_and_versions_are_404_and_v1_keeps_problem_json()
    {
        using var content = new StringContent("""{"inputs": []}""", Encoding.UTF8, "application/json");
        await AssertErrorAsync(await Client.PostAsync("/v2/models/no-such-model/infer", content), HttpStatusCode.NotFound);
        using var versioned = new StringContent("""{"inputs": []}""", Encoding.UTF8, "application/json");
        await AssertErrorAsync(await Client.PostAsync("/v2/models/mini_resnet/versions/0/infer", versioned), HttpStatusCode.NotFound);
        using var form = Http.TensorForm([1, 2, 3]);
        await Http.AssertProblemAsync(await Client.PostAsync("/v1/models/mini_resnet/predict", form), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Routes_and_methods_that_do_not_exist_answer_the_protocols_error_on_v2_and_problem_json_on_v1()
    {
        var missing = await AssertErrorAsync(await Client.GetAsync("/v2/models/mini_resnet/no-such-route"), HttpStatusCode.NotFound);
        Assert.Contains("/v2/models/mini_resnet/no-such-route", missing);
        await AssertErrorAsync(await Client.GetAsync("/v2/models/mini_resnet/infer"), HttpStatusCode.MethodNotAllowed);
        await AssertErrorAsync(await Client.DeleteAsync("/v2/models/mini_resnet"), HttpStatusCode.MethodNotAllowed);
        await Http.AssertProblemAsync(await Client.GetAsync("/v1/models/mini_resnet/no-such-route"), HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("guided-backprop", "guided_backprop")]
    [InlineData("grad-cam", "grad_cam")]
    public async Task Explain_extension_gives_the_reference_maps(string method, string reference)
    {
        var c = ReferenceCases.Get("mini_resnet", "input1");
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input1.tensor.npy")), long.MaxValue);
        var (inputName, _) = await NamesAsync("mini_resnet");
        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject { ["name"] = inputName, ["shape"] = Shape(tensor.Shape), ["datatype"] = "FP32", ["data"] = Flat(tensor.Data) }),
            ["parameters"] = new JsonObject { ["method"] = method, ["target"] = c.Target },
        };
        var response = JsonNode.Parse(await ReadOkAsync(await PostJsonAsync("/v2/models/mini_resnet/explain", request)))!;
        var parameters = response["parameters"]!;
        Assert.Equal(method, (string)parameters["method"]!);
        Assert.Equal(c.Target, (int)parameters["target"]!);
        Assert.Equal(c.Score, (double)parameters["score"]!, 1e-3 * Math.Max(1, Math.Abs(c.Score)));
        var attributions = response["outputs"]![0]!;
        Assert.Equal("attributions", (string)attributions["name"]!);
        Assert.Equal("FP32", (string)attributions["datatype"]!);

        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", $"input1.{reference}.npy")), long.MaxValue);
        Assert.Equal(expected.Shape, attributions["shape"]!.AsArray().Select(d => (long)d!).ToArray());
        var actual = attributions["data"]!.AsArray().Select(v => (float)v!).ToArray();
        var scale = expected.Data.Max(Math.Abs);
        Assert.True(expected.Data.Zip(actual, (e, a) => Math.Abs(e - a)).Max() <= 1e-3 * scale);
    }

    [Fact]
    public async Task Explain_extension_answers_in_binary_when_asked()
    {
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), long.MaxValue);
        var (inputName, _) = await NamesAsync("seed_cnn");
        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject { ["name"] = inputName, ["shape"] = Shape(tensor.Shape), ["datatype"] = "FP32", ["data"] = Flat(tensor.Data) }),
            ["parameters"] = new JsonObject { ["method"] = "gradient", ["binary_data_output"] = true },
        };
        var (json, binary) = await SplitAsync(await PostJsonAsync("/v2/models/seed_cnn/explain", request));
        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.gradient.npy")), long.MaxValue).Data;
        var actual = new float[binary.Length / 4];
        Buffer.BlockCopy(binary, 0, actual, 0, binary.Length);
        Assert.Equal(expected.Length * 4, (int)json["outputs"]![0]!["parameters"]!["binary_data_size"]!);
        Assert.True(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() <= 1e-3 * expected.Max(Math.Abs));
    }

    [Fact]
    public async Task Infer_follows_the_inference_api_key_rule()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:ApiKey"] = "secret", ["Saliency:ApiKeyForInference"] = "true" });
        using var client = factory.CreateClient();
        using var content = new StringContent("""{"inputs": []}""", Encoding.UTF8, "application/json");
        await AssertErrorAsync(await client.PostAsync("/v2/models/any/infer", content), HttpStatusCode.Unauthorized);
        using var keyed = new StringContent("""{"inputs": []}""", Encoding.UTF8, "application/json");
        keyed.Headers.Add("X-Api-Key", "secret");
        await AssertErrorAsync(await client.PostAsync("/v2/models/any/infer", keyed), HttpStatusCode.NotFound);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/ready")).StatusCode); // probes stay open
    }

    [Fact]
    public async Task Explain_extension_refuses_bad_parameters_with_the_protocols_error()
    {
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "input1.tensor.npy")), long.MaxValue);
        var (inputName, _) = await NamesAsync("mini_resnet");
        foreach (var parameters in new[] { new JsonObject { ["method"] = "lime" }, new JsonObject { ["method"] = "integrated-gradients", ["steps"] = "many" },
                     new JsonObject { ["target"] = 100000 } })
        {
            var request = new JsonObject
            {
                ["inputs"] = new JsonArray(new JsonObject { ["name"] = inputName, ["shape"] = Shape(tensor.Shape), ["datatype"] = "FP32", ["data"] = Flat(tensor.Data) }),
                ["parameters"] = parameters,
            };
            await AssertErrorAsync(await PostJsonAsync("/v2/models/mini_resnet/explain", request), HttpStatusCode.BadRequest);
        }
    }

    private async Task<(string Input, string Output)> NamesAsync(string model)
    {
        var metadata = JsonNode.Parse(await Client.GetStringAsync($"/v1/models/{model}"))!;
        return ((string)metadata["preprocessing"]!["input"]!, (string)metadata["outputs"]![0]!["name"]!);
    }

    private Task<HttpResponseMessage> PostJsonAsync(string path, JsonNode body) =>
        Client.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));

    private Task<HttpResponseMessage> PostBinaryAsync(string path, JsonNode header, byte[] raw)
    {
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var content = new ByteArrayContent([.. json, .. raw]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", json.Length.ToString());
        return Client.PostAsync(path, content);
    }

    private static async Task<(JsonNode Json, byte[] Binary)> SplitAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, Encoding.UTF8.GetString(body));
        var length = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single());
        return (JsonNode.Parse(body.AsSpan(0, length))!, body[length..]);
    }

    private static async Task<string> ReadOkAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        return body;
    }

    private static async Task<string> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonNode.Parse(body)!.AsObject();
        Assert.Equal(["error"], error.Select(p => p.Key));
        return (string)error["error"]!;
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Max(1e-6, expected.Max(Math.Abs));
        Assert.True(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() <= 1e-4 * scale, "outputs differ from PyTorch's");
    }

    private static JsonArray Shape(long[] shape) => new(shape.Select(d => (JsonNode)d).ToArray());

    private static JsonArray Flat(float[] data) => new(data.Select(v => (JsonNode)v).ToArray());

    private static JsonArray Nested(float[] data, long[] shape)
    {
        if (shape.Length == 1) return Flat(data);
        var stride = data.Length / (int)shape[0];
        return new JsonArray(Enumerable.Range(0, (int)shape[0]).Select(i => (JsonNode)Nested(data[(i * stride)..((i + 1) * stride)], shape[1..])).ToArray());
    }

    private static JsonArray Decode(ReadOnlySpan<byte> bytes, string datatype) => datatype switch
    {
        "BOOL" => new JsonArray(bytes.ToArray().Select(b => (JsonNode)(b != 0)).ToArray()),
        "UINT8" => new JsonArray(bytes.ToArray().Select(b => (JsonNode)b).ToArray()),
        "UINT16" => Numbers(bytes, 2, s => BitConverter.ToUInt16(s)),
        "UINT32" => Numbers(bytes, 4, s => BitConverter.ToUInt32(s)),
        "UINT64" => Numbers(bytes, 8, s => BitConverter.ToUInt64(s)),
        "INT8" => new JsonArray(bytes.ToArray().Select(b => (JsonNode)(sbyte)b).ToArray()),
        "INT16" => Numbers(bytes, 2, s => BitConverter.ToInt16(s)),
        "INT32" => Numbers(bytes, 4, s => BitConverter.ToInt32(s)),
        "INT64" => Numbers(bytes, 8, s => BitConverter.ToInt64(s)),
        "FP16" => Numbers(bytes, 2, s => (float)BitConverter.ToHalf(s)),
        "FP32" => Numbers(bytes, 4, s => BitConverter.ToSingle(s)),
        "FP64" => Numbers(bytes, 8, s => BitConverter.ToDouble(s)),
        _ => throw new ArgumentException(datatype),
    };

    private static JsonArray Numbers<T>(ReadOnlySpan<byte> bytes, int size, Func<byte[], T> read)
    {
        var values = new List<JsonNode?>();
        for (var i = 0; i < bytes.Length; i += size) values.Add(JsonValue.Create(read(bytes.Slice(i, size).ToArray())));
        return new JsonArray(values.ToArray());
    }
}
