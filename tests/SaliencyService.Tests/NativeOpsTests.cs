using System.Net;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Tests.Ops;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The engine's own ONNX Runtime kernels (src/Explain/Native): built beside the assemblies where
/// g++ is present, and a service without them still explains with standard operators. Their
/// results are checked against libtorch's float64 autograd in GradientRuleTests and against the
/// PyTorch fixtures in ExplainApiTests.
/// </summary>
public sealed class NativeOpsTests
{
    [Fact]
    public void The_kernels_are_built_beside_the_assemblies() =>
        Assert.True(NativeOps.Available, "libsaliency_ops.so is not beside the test assembly: the build found no g++ (apt-get install g++, then rebuild)");

    /// <summary>
    /// Col2Im against a float64 scatter written here (every cell of every block added where it
    /// lands) on a batch of two: strides of 1 to 3, uneven pads, a dilation, blocks that overlap and
    /// blocks that skip cells, and attributes near INT64_MAX (no overflow, no write out of range).
    /// ONNX Runtime knows the output's shape before it runs, the batch's symbol kept (its blocked
    /// layout needs it, BlockedLayoutTests).
    /// </summary>
    [Theory]
    [InlineData(7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 16, 15)]
    [InlineData(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 9, 10)]
    [InlineData(3, 2, 3, 1, 2, 1, 2, 0, 1, 1, 13, 8)]
    [InlineData(2, 3, 1, 3, 1, 2, 0, 1, 0, 2, 7, 12)]
    [InlineData(1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 9, 9)]
    [InlineData(1, 1, 1L << 62, 1L << 62, 1L << 62, 1L << 62, 0, 0, 0, 0, 2, 3)] // attributes near INT64_MAX: one block
    [InlineData(1, 1, 1L << 62, 1L << 62, 1, 1, 1L << 61, 1L << 61, 0, 0, 2, 3)] // one block, all of it in the pads
    public void Col2Im_adds_every_block_where_it_lands(long kh, long kw, long sh, long sw, long dh, long dw, long top, long left, long bottom, long right, long height, long width)
    {
        const int samples = 2, channels = 3;
        var rows = (height + top + bottom - ((kh - 1) * dh + 1)) / sh + 1;
        var columns = (width + left + right - ((kw - 1) * dw + 1)) / sw + 1;
        var cells = channels * kh * kw;
        var cols = Parity.RandomInput([samples * cells * rows * columns], 31, -1, 1);
        var model = new OnnxTestModel(13, [-1, cells, rows * columns])
            .Node(NativeOps.Col2Im, ["x"], ["y"], OnnxTestModel.Ints("image_shape", height, width), OnnxTestModel.Ints("block_shape", kh, kw),
                OnnxTestModel.Ints("strides", sh, sw), OnnxTestModel.Ints("pads", top, left, bottom, right), OnnxTestModel.Ints("dilations", dh, dw))
            .Output("y").Model();
        model.Graph.Node[0].Domain = NativeOps.Domain;
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });

        var expected = new double[samples * channels * height * width];
        for (var n = 0; n < samples; n++)
        for (var c = 0; c < channels; c++)
        for (var a = 0; a < kh; a++)
        for (var b = 0; b < kw; b++)
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < columns; j++)
        {
            var (y, x) = (i * sh - top + a * dh, j * sw - left + b * dw);
            if (y < 0 || y >= height || x < 0 || x >= width) continue;
            expected[((n * channels + c) * height + y) * width + x] += cols[((n * cells + (c * kh + a) * kw + b) * rows + i) * columns + j];
        }

        using var session = TestSessions.Open(model);
        var output = session.OutputMetadata["y"];
        Assert.Equal(new[] { -1, channels, (int)height, (int)width }, output.Dimensions);
        Assert.Equal("batch", output.SymbolicDimensions[0]);
        using var input = OrtValue.CreateTensorValueFromMemory(cols, [samples, cells, rows * columns]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["x"], [input], ["y"]);
        var actual = results[0].GetTensorDataAsSpan<float>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        Assert.All(expected.Zip(actual), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-5, $"{p.Second} against {p.First}"));
    }

    /// <summary>
    /// DepthwiseCol2Im against a float64 scatter of every tap's weight times the gradient, on a
    /// batch of two: strides of 1 to 3, uneven pads, a dilation, and attributes near INT64_MAX. Its
    /// output's shape is known before it runs, as Col2Im's.
    /// </summary>
    [Theory]
    [InlineData(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 16, 15)]
    [InlineData(3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 9, 10)]
    [InlineData(5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 13, 14)]
    [InlineData(3, 2, 3, 1, 2, 1, 2, 0, 1, 1, 13, 8)]
    [InlineData(1, 1, 1L << 62, 1L << 62, 1L << 62, 1L << 62, 0, 0, 0, 0, 2, 3)]
    public void DepthwiseCol2Im_adds_every_tap_times_its_weight(long kh, long kw, long sh, long sw, long dh, long dw, long top, long left, long bottom, long right, long height, long width)
    {
        const int samples = 2, channels = 5;
        var rows = (height + top + bottom - ((kh - 1) * dh + 1)) / sh + 1;
        var columns = (width + left + right - ((kw - 1) * dw + 1)) / sw + 1;
        var gradient = Parity.RandomInput([samples * channels * rows * columns], 32, -1, 1);
        var weights = Parity.RandomInput([channels * kh * kw], 33, -1, 1);
        var model = new OnnxTestModel(13, [-1, channels, rows, columns])
            .Initializer("w", weights, channels, 1, kh, kw)
            .Node(NativeOps.DepthwiseCol2Im, ["x", "w"], ["y"], OnnxTestModel.Ints("image_shape", height, width), OnnxTestModel.Ints("block_shape", kh, kw),
                OnnxTestModel.Ints("strides", sh, sw), OnnxTestModel.Ints("pads", top, left, bottom, right), OnnxTestModel.Ints("dilations", dh, dw))
            .Output("y").Model();
        model.Graph.Node[0].Domain = NativeOps.Domain;
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });

        var expected = new double[samples * channels * height * width];
        for (var n = 0; n < samples; n++)
        for (var c = 0; c < channels; c++)
        for (var a = 0; a < kh; a++)
        for (var b = 0; b < kw; b++)
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < columns; j++)
        {
            var (y, x) = (i * sh - top + a * dh, j * sw - left + b * dw);
            if (y < 0 || y >= height || x < 0 || x >= width) continue;
            expected[((n * channels + c) * height + y) * width + x] +=
                (double)weights[(c * kh + a) * kw + b] * gradient[((n * channels + c) * rows + i) * columns + j];
        }

        using var session = TestSessions.Open(model);
        var output = session.OutputMetadata["y"];
        Assert.Equal(new[] { -1, channels, (int)height, (int)width }, output.Dimensions);
        Assert.Equal("batch", output.SymbolicDimensions[0]);
        using var input = OrtValue.CreateTensorValueFromMemory(gradient, [samples, channels, rows, columns]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["x"], [input], ["y"]);
        var actual = results[0].GetTensorDataAsSpan<float>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        Assert.All(expected.Zip(actual), p => Assert.True(Math.Abs(p.First - p.Second) <= 1e-5, $"{p.Second} against {p.First}"));
    }

    /// <summary>The Keras CNN's seven MaxPools, their backward by Indices and a scatter, against PyTorch's float64 map.</summary>
    [Fact]
    public async Task Without_them_guided_backprop_matches_the_reference()
    {
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var service = await ServiceProcess.StartAsync(store, new Dictionary<string, string> { ["SALIENCY_NATIVE_OPS"] = "0" });
            await Http.ImportFixtureAsync(service.Client, "seed_cnn");
            foreach (var stem in new[] { "input0", "input1" })
            {
                using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", stem + ".tensor.npy")));
                var response = await service.Client.PostAsync("/v1/models/seed_cnn/explain?method=guided-backprop&format=npy", form);
                Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
                ReferenceMaps.AssertMatches("seed_cnn", stem + ".guided_backprop.npy", await response.Content.ReadAsByteArrayAsync());
            }
        }
        finally
        {
            if (Directory.Exists(store)) Directory.Delete(store, recursive: true);
        }
    }
}
