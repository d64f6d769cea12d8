using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Tests;

/// <summary>
/// Models whose input or output is not float32 — tf2onnx's image models take uint8 pixels, float16
/// exports compute in half precision — import, predict and (uint8 pixels cast to float) explain;
/// each answer is checked against the same arithmetic in float64.
/// </summary>
public sealed class InputElementTypeTests : IDisposable
{
    private const int Side = 4, Channels = 3, Classes = 2, Features = Side * Side * Channels;
    private readonly ServiceFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    /// <summary>Seeded weights of the linear layer both models apply: features × classes.</summary>
    private static readonly float[] Weights = Enumerable.Range(0, Features * Classes).Select(i => (float)Math.Sin(i * 0.7) * 0.5f).ToArray();

    /// <summary>
    /// An NHWC uint8 image model as tf2onnx writes them: Cast to float, divide by 255, then a linear
    /// layer (the flattened pixels × <see cref="Weights"/>).
    /// </summary>
    private static byte[] Uint8Model()
    {
        var model = new OnnxTestModel(13, [1, Side, Side, Channels])
            .Initializer("by", [255f])
            .Initializer("flat", [1L, Features], 2)
            .Initializer("w", Weights, Features, Classes)
            .Node("Cast", ["x"], ["xf"], OnnxTestModel.Int("to", (long)DataType.Float))
            .Node("Div", ["xf", "by"], ["scaled"])
            .Node("Reshape", ["scaled", "flat"], ["row"])
            .Node("MatMul", ["row", "w"], ["logits"])
            .Output("logits")
            .Model();
        model.Graph.Input[0].Type.TensorType.ElemType = (int)DataType.Uint8;
        return model.ToByteArray();
    }

    /// <summary>
    /// The same linear layer on an NHWC image in float16 throughout: input, weights (in
    /// <c>int32_data</c>, one value each, as the ONNX helpers write them), and output.
    /// </summary>
    private static byte[] Float16Model()
    {
        var model = new OnnxTestModel(13, [1, Side, Side, Channels])
            .Initializer("flat", [1L, Features], 2)
            .Node("Reshape", ["x", "flat"], ["row"])
            .Node("MatMul", ["row", "w"], ["logits"])
            .Output("logits", DataType.Float16).Model();
        model.Graph.Input[0].Type.TensorType.ElemType = (int)DataType.Float16;
        model.Graph.Initializer.Add(Float16Tensor("w", Weights, Features, Classes));
        return model.ToByteArray();
    }

    private static TensorProto Float16Tensor(string name, IEnumerable<float> values, params long[] shape) => new()
    {
        Name = name, DataType = (int)DataType.Float16, Dims = { shape },
        Int32Data = { values.Select(v => (int)BitConverter.HalfToUInt16Bits((Half)v)) },
    };

    private static double[] Linear(IReadOnlyList<double> features, Func<float, double> weight) =>
        Enumerable.Range(0, Classes).Select(c => Enumerable.Range(0, Features).Sum(f => features[f] * weight(Weights[f * Classes + c]))).ToArray();

    private async Task<HttpClient> ImportAsync(string name, byte[] onnx, HttpStatusCode expected = HttpStatusCode.Created, string? manifest = null)
    {
        var client = _factory.CreateClient();
        using var form = Http.ModelForm(onnx, name, manifest);
        var response = await client.PostAsync("/v1/models", form);
        Assert.True(response.StatusCode == expected, await response.Content.ReadAsStringAsync());
        return client;
    }

    private static async Task<float[]> ScoresAsync(HttpClient client, string model, MultipartFormDataContent form)
    {
        var response = await client.PostAsync($"/v1/models/{model}/predict?topK={Classes}", form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var top = (await Http.ReadAsync<PredictResponse>(response)).Predictions.Single().Top;
        return top.OrderBy(s => s.Index).Select(s => s.Score).ToArray();
    }

    [Fact]
    public async Task A_uint8_image_model_takes_the_images_pixels_as_they_are()
    {
        using var client = await ImportAsync("pixels", Uint8Model());
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/pixels"));
        Assert.Equal("uint8", descriptor.Inputs[0].DataType);
        Assert.Equal(("NHWC", 1.0), (descriptor.Preprocessing.Layout, descriptor.Preprocessing.Scale));

        var random = new Random(7);
        using var image = new Image<Rgb24>(Side, Side);
        var pixels = new List<double>();
        for (var y = 0; y < Side; y++)
        for (var x = 0; x < Side; x++)
        {
            var p = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
            image[x, y] = p;
            pixels.AddRange([p.R, p.G, p.B]);
        }
        using var png = new MemoryStream();
        image.SaveAsPng(png);
        var expected = Linear(pixels.Select(v => v / 255).ToList(), w => w);

        using var form = Http.Form(("image", png.ToArray(), "pixels.png"));
        var scores = await ScoresAsync(client, "pixels", form);
        for (var c = 0; c < Classes; c++) Assert.Equal(expected[c], scores[c], 1e-4);

        // A float32 .npy of whole pixel values feeds it too.
        using var tensor = Http.TensorForm(Npy.Write(pixels.Select(v => (float)v).ToArray(), [1, Side, Side, Channels]));
        Assert.Equal(scores, await ScoresAsync(client, "pixels", tensor));
    }

    [Theory]
    [InlineData(3.5f)]
    [InlineData(-1f)]
    [InlineData(256f)]
    public async Task A_value_a_uint8_input_cannot_hold_is_a_400_naming_it(float value)
    {
        using var client = await ImportAsync("pixels", Uint8Model());
        var values = Enumerable.Repeat(7f, Features).ToArray();
        values[5] = value;
        using var form = Http.TensorForm(Npy.Write(values, [Side, Side, Channels]));
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models/pixels/predict", form), HttpStatusCode.BadRequest);
        Assert.Contains("uint8", detail);
        Assert.Contains("element 5", detail);
    }

    [Theory]
    [InlineData("guided-backprop")]
    [InlineData("gradient")]
    public async Task A_uint8_models_map_is_the_gradient_with_respect_to_its_pixel_values(string method)
    {
        using var client = await ImportAsync("pixels", Uint8Model());
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/pixels"));
        Assert.True(descriptor.Explain.Supported, descriptor.Explain.Reason);

        // The model is linear (no rectifier, so both rules give the gradient): ∂logit[c]/∂pixel[f] = W[f, c] / 255.
        const int target = 1;
        var pixels = Enumerable.Range(0, Features).Select(i => (float)(i * 5 % 256)).ToArray();
        await AssertMapIsTheGradientAsync(client, "pixels", method, target, pixels, "UINT8", f => Weights[f * Classes + target] / 255.0);
    }

    /// <summary>
    /// Explains <paramref name="input"/> as a <c>.npy</c> and through the v2 explain extension (the input
    /// in the model's own <paramref name="datatype"/>): both maps must be <paramref name="gradient"/>,
    /// ∂logit[target]/∂input[f], to 1e-7.
    /// </summary>
    private static async Task AssertMapIsTheGradientAsync(HttpClient client, string model, string method, int target, float[] input, string datatype,
        Func<int, double> gradient)
    {
        using var form = Http.TensorForm(Npy.Write(input, [Side, Side, Channels]));
        var response = await client.PostAsync($"/v1/models/{model}/explain?method={method}&target={target}&format=npy", form);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var map = Npy.Read(await Http.ReadBytesAsync(response), long.MaxValue);
        Assert.Equal(new long[] { Side, Side, Channels }, map.Shape[^3..]);
        for (var f = 0; f < Features; f++) Assert.Equal(gradient(f), map.Data[f], 1e-7);

        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "x", ["shape"] = new JsonArray(1, Side, Side, Channels), ["datatype"] = datatype,
                ["data"] = new JsonArray(input.Select(v => (JsonNode)v).ToArray()),
            }),
            ["parameters"] = new JsonObject { ["method"] = method, ["target"] = target },
        };
        var v2 = await client.PostAsync($"/v2/models/{model}/explain", new StringContent(request.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        var body = await v2.Content.ReadAsStringAsync();
        Assert.True(v2.StatusCode == HttpStatusCode.OK, body);
        var attributions = JsonNode.Parse(body)!["outputs"]![0]!["data"]!.AsArray().Select(v => (float)v!).ToArray();
        Assert.Equal(map.Data, attributions);
    }

    [Fact]
    public async Task An_integer_input_used_other_than_by_a_cast_to_float_is_not_explainable_and_says_why()
    {
        // uint8 → int32 → float: the first use is no Cast to float, so no real-valued graph is read into it.
        var model = new OnnxTestModel(13, [1, Features])
            .Initializer("w", Weights, Features, Classes)
            .Node("Cast", ["x"], ["wide"], OnnxTestModel.Int("to", (long)DataType.Int32))
            .Node("Cast", ["wide"], ["xf"], OnnxTestModel.Int("to", (long)DataType.Float))
            .Node("MatMul", ["xf", "w"], ["logits"])
            .Output("logits")
            .Model();
        model.Graph.Input[0].Type.TensorType.ElemType = (int)DataType.Uint8;
        using var client = await ImportAsync("integers", model.ToByteArray());
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/integers"));
        Assert.False(descriptor.Explain.Supported);
        Assert.Contains("uint8", descriptor.Explain.Reason);
        using var form = Http.TensorForm(Npy.Write(Enumerable.Repeat(7f, Features).ToArray(), [1, Features]));
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/v1/models/integers/predict", form)).StatusCode);
        using var explain = Http.TensorForm(Npy.Write(Enumerable.Repeat(7f, Features).ToArray(), [1, Features]));
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models/integers/explain", explain), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("uint8", detail);
    }

    [Fact]
    public async Task A_manifest_that_would_scale_a_uint8_inputs_pixels_is_refused()
    {
        using var client = _factory.CreateClient();
        using var form = Http.ModelForm(Uint8Model(), "pixels", JsonSerializer.Serialize(new { scale = 1.0 / 255 }));
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models", form), HttpStatusCode.BadRequest);
        Assert.Contains("scale must be 1", detail);
    }

    [Fact]
    public async Task A_float16_model_predicts_what_its_half_precision_arithmetic_gives()
    {
        using var client = await ImportAsync("half", Float16Model());
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/half"));
        Assert.Equal(("float16", "float16"), (descriptor.Inputs[0].DataType, descriptor.Outputs[0].DataType));

        var input = Enumerable.Range(0, Features).Select(i => (float)Math.Cos(i * 1.3)).ToArray();
        // Float64 over the float16 values the model holds; its sum of 48 products rounds to float16 too.
        var expected = Linear(input.Select(v => (double)(Half)v).ToList(), w => (double)(Half)w);
        using var form = Http.TensorForm(Npy.Write(input, [1, Side, Side, Channels]));
        var scores = await ScoresAsync(client, "half", form);
        for (var c = 0; c < Classes; c++) Assert.Equal(expected[c], scores[c], 2e-2);
    }

    [Theory]
    [InlineData("guided-backprop")]
    [InlineData("gradient")]
    public async Task A_float16_models_map_is_the_gradient_of_its_own_float16_weights(string method)
    {
        using var client = await ImportAsync("half", Float16Model());
        var descriptor = await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/half"));
        Assert.True(descriptor.Explain.Supported, descriptor.Explain.Reason);

        // Linear, so both rules give the gradient: ∂logit[c]/∂x[f] = W[f, c] as float16 holds it, exactly
        // (the explainer computes the same weights in float32). A weight read as anything else is off by far more.
        const int target = 0;
        var input = Enumerable.Range(0, Features).Select(i => (float)(Half)Math.Cos(i * 1.3)).ToArray();
        await AssertMapIsTheGradientAsync(client, "half", method, target, input, "FP16", f => (double)(Half)Weights[f * Classes + target]);
    }

    [Fact]
    public async Task A_float16_model_is_explainable_within_half_precisions_parity_tolerance()
    {
        // A mixed-precision export (float32 arithmetic, rounded to float16 between steps): scores near 1,
        // then ten additions of 0.0003, each rounded to float16 (a step of 2^-11 or 2^-10 there), which
        // rounds each one away or up. The explainer's float32 keeps them: 1e-3–1e-2 apart.
        var builder = new OnnxTestModel(13, [1, Side, Side, Channels])
            .Initializer("flat", [1L, Features], 2)
            .Initializer("w", Weights.Select(v => v / 100).ToArray(), Features, Classes)
            .Initializer("one", [1f], 1)
            .Initializer("step", [0.0003f], 1)
            .Node("Cast", ["x"], ["xf"], OnnxTestModel.Int("to", (long)DataType.Float))
            .Node("Reshape", ["xf", "flat"], ["row"])
            .Node("MatMul", ["row", "w"], ["product"])
            .Node("Add", ["product", "one"], ["sum0"]);
        for (var i = 0; i < 10; i++)
            builder.Node("Cast", [$"sum{i}"], [$"half{i}"], OnnxTestModel.Int("to", (long)DataType.Float16))
                .Node("Cast", [$"half{i}"], [$"rounded{i}"], OnnxTestModel.Int("to", (long)DataType.Float))
                .Node("Add", [$"rounded{i}", "step"], [$"sum{i + 1}"]);
        var model = builder.Node("Cast", ["sum10"], ["logits"], OnnxTestModel.Int("to", (long)DataType.Float16)).Output("logits", DataType.Float16).Model();
        model.Graph.Input[0].Type.TensorType.ElemType = (int)DataType.Float16;

        using var client = await ImportAsync("drift", model.ToByteArray());
        var explain = (await Http.ReadAsync<ModelDescriptor>(await client.GetAsync("/v1/models/drift"))).Explain;
        Assert.True(explain.Supported, explain.Reason);
        Assert.InRange(explain.ParityMaxAbsDiff!.Value, 1e-3 * 1.25, 1e-2 * 0.75); // past float32's tolerance at the scores' largest (≤ 1.25)
    }

    [Fact]
    public void Half_precision_is_read_as_float32_values_the_file_holds()
    {
        static TensorProto Half16(string name, params float[] values) => new()
        {
            Name = name, DataType = (int)DataType.Float16, Dims = { values.Length },
            RawData = ByteString.CopyFrom(values.SelectMany(v => BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)v))).ToArray()),
        };
        var model = new OnnxTestModel(13, [1, 3])
            .Node("Cast", ["x"], ["x16"], OnnxTestModel.Int("to", (long)DataType.Float16))
            .Node("Constant", [], ["c"], new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = Half16("c", 0.1f, 2f, -3f) })
            .Node("Mul", ["x16", "b"], ["y"])
            .Output("y", DataType.Float16)
            .Model();
        // bfloat16 keeps float32's top 16 bits: 1.5 is 0x3FC0.
        model.Graph.Initializer.Add(new TensorProto { Name = "b", DataType = (int)DataType.Bfloat16, Dims = { 3 }, Int32Data = { 0x3FC0, 0x3FC0, 0xC000 } });
        Assert.False(Float32Graph.IsFromHalfPrecision(Float32Graph.Widen(new OnnxTestModel(13, [1, 3]).Node("Relu", ["x"], ["y"]).Output("y").Model())));

        var graph = Float32Graph.Widen(model).Graph;
        Assert.True(Float32Graph.IsFromHalfPrecision(model));
        Assert.Equal((long)DataType.Float, graph.Node[0].Attribute.Single().I);
        Assert.Equal((int)DataType.Float, graph.Output[0].Type.TensorType.ElemType);
        static float[] Values(TensorProto t)
        {
            Assert.Equal((int)DataType.Float, t.DataType);
            return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        }
        Assert.Equal(new[] { (float)(Half)0.1f, 2f, -3f }, Values(graph.Node[1].Attribute.Single().T));
        Assert.Equal(new[] { 1.5f, 1.5f, -2f }, Values(graph.Initializer.Single()));
        Assert.Empty(graph.Initializer.Single().Int32Data);

        // Data that does not fill its shape is left as it is, for the mirror to refuse.
        var torn = new OnnxTestModel(13, [1, 3]).Node("Relu", ["x"], ["y"]).Output("y").Model();
        torn.Graph.Initializer.Add(new TensorProto { Name = "t", DataType = (int)DataType.Float16, Dims = { 4 }, RawData = ByteString.CopyFrom(1, 2, 3) });
        Assert.Equal((int)DataType.Float16, Float32Graph.Widen(torn).Graph.Initializer.Single().DataType);
    }

    [Fact]
    public void Only_an_integer_input_whose_every_use_is_a_cast_to_float_is_read_as_float()
    {
        static int Widened(Action<OnnxTestModel> more, Action<ModelProto>? edit = null)
        {
            var builder = new OnnxTestModel(13, [1, 3]).Node("Cast", ["x"], ["xf"], OnnxTestModel.Int("to", (long)DataType.Float));
            more(builder);
            var model = builder.Model();
            model.Graph.Input[0].Type.TensorType.ElemType = (int)DataType.Uint8;
            edit?.Invoke(model);
            return Float32Graph.Widen(model).Graph.Input[0].Type.TensorType.ElemType;
        }
        Assert.Equal((int)DataType.Float, Widened(m => m.Node("Relu", ["xf"], ["y"]).Output("y")));
        // Also used as an integer: the graph must keep its type.
        Assert.Equal((int)DataType.Uint8, Widened(m => m.Node("Relu", ["xf"], ["y"]).Node("Identity", ["x"], ["raw"]).Output("y").Output("raw", DataType.Uint8)));
        // Itself an output.
        Assert.Equal((int)DataType.Uint8, Widened(m => m.Node("Relu", ["xf"], ["y"]).Output("y").Output("x", DataType.Uint8)));
        // An initializer listed among the inputs, as older exporters write them.
        Assert.Equal((int)DataType.Uint8, Widened(m => m.Node("Relu", ["xf"], ["y"]).Output("y"),
            model => model.Graph.Initializer.Add(new TensorProto { Name = "x", DataType = (int)DataType.Uint8, Dims = { 1, 3 }, RawData = ByteString.CopyFrom(1, 2, 3) })));
        // Cast to float16 (a float16 export of a uint8 image model): float once the half precision is read as float32.
        Assert.Equal((int)DataType.Float, Widened(m => m.Node("Relu", ["xf"], ["y"]).Output("y"),
            model => model.Graph.Node[0].Attribute.Single().I = (long)DataType.Float16));
    }

    [Fact]
    public void Float_values_convert_exactly_where_the_type_holds_them()
    {
        var bytes = FloatElements.ToInput("x", TensorElementType.UInt8, [3], [0f, 128f, 255f]);
        Assert.Equal(new byte[] { 0, 128, 255 }, (byte[])bytes.Data);
        var int64 = FloatElements.ToInput("x", TensorElementType.Int64, [2], [-16777216f, MathF.ScaleB(1, 62)]);
        Assert.Equal(new[] { -16777216L, 1L << 62 }, (long[])int64.Data);
        // 2^63 is just past long's range; NaN is no whole number.
        Assert.Throws<InvalidArgumentException>(() => FloatElements.ToInput("x", TensorElementType.Int64, [1], [MathF.ScaleB(1, 63)]));
        Assert.Throws<InvalidArgumentException>(() => FloatElements.ToInput("x", TensorElementType.UInt8, [1], [float.NaN]));

        var half = FloatElements.ToInput("x", TensorElementType.Float16, [2], [0.1f, -65504f]);
        Assert.Equal(new[] { (float)(Half)0.1f, -65504f }, FloatElements.Of(half));
        var overflow = Assert.Throws<InvalidArgumentException>(() => FloatElements.ToInput("x", TensorElementType.Float16, [2], [1f, 70000f]));
        Assert.Contains("element 1 (70000)", overflow.Message);
        var brain = FloatElements.ToInput("x", TensorElementType.BFloat16, [2], [1.00390625f, 3f]); // 1 + 2^-8: a tie, to even
        Assert.Equal(new[] { 1f, 3f }, FloatElements.Of(brain));
        Assert.Equal(new[] { 0.1f }, FloatElements.Of(FloatElements.ToInput("x", TensorElementType.Double, [1], [0.1f])));
    }
}
