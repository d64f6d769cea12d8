using System.Net;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Tests.Ops;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Support;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// The engine's own ONNX Runtime kernels (src/Explain/Native): built beside the assemblies where
/// g++ is present, and a service without them still explains with standard operators. Their
/// results are checked against libtorch's float64 autograd in GradientRuleTests and against the
/// PyTorch fixtures in ExplainApiTests.
/// </summary>
public sealed partial class NativeOpsTests
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
        var w = new KernelWindow(kh, kw, sh, sw, dh, dw, top, left, bottom, right, height, width);
        var cells = channels * kh * kw;
        var cols = Parity.RandomInput([samples * cells * w.Rows * w.Columns], 31, -1, 1);
        var model = w.Node(new OnnxTestModel(13, [-1, cells, w.Rows * w.Columns]), NativeOps.Col2Im, ["x"]);
        var expected = w.Scatter(samples, channels, (n, c, a, b, i, j) => cols[((n * cells + (c * kh + a) * kw + b) * w.Rows + i) * w.Columns + j]);
        w.AssertComputes(model, expected, channels, ("x", cols, [samples, cells, w.Rows * w.Columns]));
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
        var w = new KernelWindow(kh, kw, sh, sw, dh, dw, top, left, bottom, right, height, width);
        var gradient = Parity.RandomInput([samples * channels * w.Rows * w.Columns], 32, -1, 1);
        var weights = Parity.RandomInput([channels * kh * kw], 33, -1, 1);
        var model = w.Node(new OnnxTestModel(13, [-1, channels, w.Rows, w.Columns]).Initializer("w", weights, channels, 1, kh, kw),
            NativeOps.DepthwiseCol2Im, ["x", "w"]);
        var expected = w.Scatter(samples, channels, (n, c, a, b, i, j) =>
            (double)weights[(c * kh + a) * kw + b] * gradient[((n * channels + c) * w.Rows + i) * w.Columns + j]);
        w.AssertComputes(model, expected, channels, ("x", gradient, [samples, channels, w.Rows, w.Columns]));
    }

    /// <summary>
    /// SparseConvTranspose against a float64 scatter of every cell's Σ_k W[k, c, a, b]·dY[n, k, i, j],
    /// on a batch of two whose gradient is five-sixths zeros, as a strided max pool's leaves it
    /// (the cells that are not zero scattered, the others skipped): ResNet's stem smaller, AlexNet's
    /// 11×11/4, channels across two of the kernel's groups of 32, dilations and uneven pads, an image
    /// of several of the kernel's bands of rows, and attributes near INT64_MAX. Its output's shape is
    /// known before it runs, as Col2Im's.
    /// </summary>
    [Theory]
    [InlineData(7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 16, 15, 3, 20)]
    [InlineData(11, 11, 4, 4, 1, 1, 2, 2, 2, 2, 35, 33, 3, 9)]
    [InlineData(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 9, 10, 1, 40)]
    [InlineData(5, 3, 3, 1, 2, 2, 2, 0, 1, 1, 13, 8, 5, 7)]
    [InlineData(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 50, 300, 12, 33)]
    [InlineData(1, 1, 1L << 62, 1L << 62, 1L << 62, 1L << 62, 0, 0, 0, 0, 2, 3, 2, 3)]
    [InlineData(1, 1, 1L << 62, 1L << 62, 1, 1, 1L << 61, 1L << 61, 0, 0, 2, 3, 2, 3)]
    public void SparseConvTranspose_adds_each_cell_s_weights_where_they_land(long kh, long kw, long sh, long sw, long dh, long dw,
        long top, long left, long bottom, long right, long height, long width, int channels, int kernels)
    {
        const int samples = 2;
        var w = new KernelWindow(kh, kw, sh, sw, dh, dw, top, left, bottom, right, height, width);
        var gradient = Parity.RandomInput([samples * kernels * w.Rows * w.Columns], 34, -1, 1);
        for (var i = 0; i < gradient.Length; i++)
            if (i % 6 != 0) gradient[i] = 0;
        var weights = Parity.RandomInput([kernels * channels * kh * kw], 35, -1, 1);
        var model = w.Node(new OnnxTestModel(13, [-1, kernels, w.Rows, w.Columns]).Initializer("w", weights, kernels, channels, kh, kw),
            NativeOps.SparseConvTranspose, ["x", "w"]);
        var expected = w.Scatter(samples, channels, (n, c, a, b, i, j) => Enumerable.Range(0, kernels).Sum(k =>
            (double)weights[((k * channels + c) * kh + a) * kw + b] * gradient[((n * kernels + k) * w.Rows + i) * w.Columns + j]));
        w.AssertComputes(model, expected, channels, ("x", gradient, [samples, kernels, w.Rows, w.Columns]));
    }

    /// <summary>
    /// Col2Im and DepthwiseCol2Im as a strided convolution's input gradient in a backward: the
    /// scatter + R, gated by the rectifier output G (each cell where 0 &lt; G &lt; upper, its positive
    /// part for rectify = 2, else 0), against float64; R left out as a tensor of no elements; G at
    /// exactly 0 and at upper closes its cell.
    /// </summary>
    [Theory]
    [InlineData(false, true, 2, float.PositiveInfinity)]
    [InlineData(false, false, 1, 6f)]
    [InlineData(true, true, 1, float.PositiveInfinity)]
    [InlineData(true, false, 2, 6f)]
    public void Col2Im_adds_the_residual_then_gates_by_the_rectifier(bool depthwise, bool withResidual, int rectify, float upper)
    {
        const int samples = 2, channels = 3, height = 16, width = 15;
        var w = new KernelWindow(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, height, width);
        long[] image = [samples, channels, height, width];
        var residual = Parity.RandomInput(image, 41, -1, 1);
        var gate = Parity.RandomInput(image, 42, -1, 8);
        for (var i = 0; i < gate.Length; i += 7) gate[i] = 0;
        if (float.IsFinite(upper))
            for (var i = 3; i < gate.Length; i += 11) gate[i] = upper;

        var builder = new OnnxTestModel(13, depthwise ? [-1, channels, w.Rows, w.Columns] : [-1, channels * 9, w.Rows * w.Columns])
            .Initializer("none", Array.Empty<float>(), 0)
            .Input("r", TensorProto.Types.DataType.Float, -1, channels, height, width).Input("g", TensorProto.Types.DataType.Float, -1, channels, height, width);
        (string, float[], long[]) x;
        double[] expected;
        string[] inputs = [withResidual ? "r" : "none", "g"];
        if (depthwise)
        {
            var gradient = Parity.RandomInput([samples, channels, w.Rows, w.Columns], 43, -1, 1);
            var weights = Parity.RandomInput([channels * 9], 44, -1, 1);
            builder = builder.Initializer("w", weights, channels, 1, 3, 3);
            inputs = ["x", "w", .. inputs];
            x = ("x", gradient, [samples, channels, w.Rows, w.Columns]);
            expected = w.Scatter(samples, channels, (n, c, a, b, i, j) =>
                (double)weights[(c * 3 + a) * 3 + b] * gradient[((n * channels + c) * w.Rows + i) * w.Columns + j]);
        }
        else
        {
            var cols = Parity.RandomInput([samples, channels * 9, w.Rows * w.Columns], 45, -1, 1);
            inputs = ["x", .. inputs];
            x = ("x", cols, [samples, channels * 9, w.Rows * w.Columns]);
            expected = w.Scatter(samples, channels, (n, c, a, b, i, j) => cols[((n * channels * 9 + c * 9 + a * 3 + b) * w.Rows + i) * w.Columns + j]);
        }
        for (var i = 0; i < expected.Length; i++)
        {
            var value = expected[i] + (withResidual ? residual[i] : 0);
            expected[i] = gate[i] > 0 && gate[i] < upper ? rectify == 2 ? Math.Max(value, 0) : value : 0;
        }
        Assert.Contains(expected, v => rectify == 1 ? v < 0 : v > 0); // the gradient's gate passes negative cells too
        var model = w.Node(builder, depthwise ? NativeOps.DepthwiseCol2Im : NativeOps.Col2Im, inputs, Int("rectify", rectify), OnnxTestModel.Float("upper", upper));
        w.AssertComputes(model, expected, channels, withResidual ? [x, ("r", residual, image), ("g", gate, image)] : [x, ("g", gate, image)]);
    }

    /// <summary>A window (the kernels' attributes) over an image, and what the kernels' tests check with it.</summary>
    private sealed record KernelWindow(long Kh, long Kw, long Sh, long Sw, long Dh, long Dw, long Top, long Left, long Bottom, long Right, long Height, long Width)
    {
        public long Rows => (Height + Top + Bottom - ((Kh - 1) * Dh + 1)) / Sh + 1;
        public long Columns => (Width + Left + Right - ((Kw - 1) * Dw + 1)) / Sw + 1;

        /// <summary>The model with the kernel <paramref name="op"/> as its one node, output y.</summary>
        public ModelProto Node(OnnxTestModel model, string op, string[] inputs, params AttributeProto[] more) =>
            InNativeDomain(model.Node(op, inputs, ["y"], [Ints("image_shape", Height, Width), Ints("block_shape", Kh, Kw),
                Ints("strides", Sh, Sw), Ints("pads", Top, Left, Bottom, Right), Ints("dilations", Dh, Dw), .. more])
                .Output("y").Model());

        /// <summary>The float64 image: cell (a, b) of block (i, j) of channel c of sample n added where it lands.</summary>
        public double[] Scatter(int samples, int channels, Func<long, long, long, long, long, long, double> cell)
        {
            var image = new double[samples * channels * Height * Width];
            for (var n = 0; n < samples; n++)
            for (var c = 0; c < channels; c++)
            for (var a = 0; a < Kh; a++)
            for (var b = 0; b < Kw; b++)
            for (var i = 0; i < Rows; i++)
            for (var j = 0; j < Columns; j++)
            {
                var (y, x) = (i * Sh - Top + a * Dh, j * Sw - Left + b * Dw);
                if (y < 0 || y >= Height || x < 0 || x >= Width) continue;
                image[((n * channels + c) * Height + y) * Width + x] += cell(n, c, a, b, i, j);
            }
            return image;
        }

        /// <summary>
        /// ONNX Runtime knows the output's shape before it runs, the batch's symbol kept (its
        /// blocked layout needs it, BlockedLayoutTests), and the kernel computes <paramref name="expected"/>.
        /// </summary>
        public void AssertComputes(ModelProto model, double[] expected, int channels, params (string Name, float[] Data, long[] Shape)[] inputs)
        {
            using var session = TestSessions.Open(model);
            var output = session.OutputMetadata["y"];
            Assert.Equal(new[] { -1, channels, (int)Height, (int)Width }, output.Dimensions);
            Assert.Equal("batch", output.SymbolicDimensions[0]);
            AssertRuns(session, expected, inputs);
        }
    }

    /// <summary>The session's output y, run on <paramref name="inputs"/>, is <paramref name="expected"/> within float32's rounding.</summary>
    private static void AssertRuns(InferenceSession session, double[] expected, params (string Name, float[] Data, long[] Shape)[] inputs) =>
        AssertRuns(session, expected, 1e-5, inputs);

    private static void AssertRuns(InferenceSession session, double[] expected, double tolerance, params (string Name, float[] Data, long[] Shape)[] inputs)
    {
        var values = inputs.Select(i => OrtValue.CreateTensorValueFromMemory(i.Data, i.Shape)).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, ["y"]);
            var actual = results[0].GetTensorDataAsSpan<float>().ToArray();
            Assert.Equal(expected.Length, actual.Length);
            Assert.All(expected.Zip(actual), p => Assert.True(Math.Abs(p.First - p.Second) <= tolerance, $"{p.Second} against {p.First}"));
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    /// <summary>
    /// SampleSum against a float64 sum over the first axis: one sample and several, samples that
    /// are not a whole number of a task's block (4,096 values) or of a vector, and a batch of 16.
    /// ONNX Runtime knows the output's shape, [1, ...], before it runs.
    /// </summary>
    [Theory]
    [InlineData(1, new long[] { 3, 5, 7 })]
    [InlineData(5, new long[] { 5, 37, 41 })] // 7,585 values a sample: one block and most of another
    [InlineData(16, new long[] { 64, 8, 8 })]
    [InlineData(3, new long[] { 7 })]
    public void SampleSum_adds_every_sample(int samples, long[] sample)
    {
        var size = (int)sample.Aggregate(1L, (product, d) => product * d);
        var x = Parity.RandomInput([samples * size], 41, -1, 1);
        var model = InNativeDomain(new OnnxTestModel(13, [-1, .. sample]).Node(NativeOps.SampleSum, ["x"], ["y"]).Output("y").Model());
        using var session = TestSessions.Open(model);
        Assert.Equal([1, .. sample.Select(d => (int)d)], session.OutputMetadata["y"].Dimensions);
        var expected = Enumerable.Range(0, size).Select(i => Enumerable.Range(0, samples).Sum(n => (double)x[n * size + i])).ToArray();
        AssertRuns(session, expected, ("x", x, [samples, .. sample]));
    }

    /// <summary>
    /// WinogradConv against a float64 direct convolution (3×3, stride 1, one cell of zero padding):
    /// odd and even sizes, a 1×1 image, rows of tiles shorter and longer than a block (16 tiles),
    /// output channels not a multiple of six (a task's group), few blocks (the input transformed
    /// first) and many (each block whole), more channels than a thread keeps a block's transform
    /// for, a transformed filter too large for every block to read (the products made element by
    /// element for chunks of blocks, or, F(2×2)'s one block, by four groups of output channels a
    /// task), weights constant (transformed once) or fed per run, four
    /// groups of output channels multiplied at once; each with both tile sizes.
    /// </summary>
    [Theory]
    [InlineData(2, 3, 7, 9, 11, true)]
    [InlineData(1, 5, 13, 40, 37, false)] // 19 tiles a row: a whole block and three tiles
    [InlineData(3, 17, 6, 1, 1, true)]
    [InlineData(1, 5, 13, 3, 5, false)]   // one block
    [InlineData(4, 4, 7, 64, 64, true)]   // 256 blocks
    [InlineData(1, 5, 13, 6, 70, false)]  // F(4×4): 18 tiles a row, the last row of tiles half outside
    [InlineData(2, 1100, 2, 64, 32, true)] // F(4×4): a block's transform over 2 MB, not kept by the thread
    [InlineData(3, 300, 260, 7, 7, true)]   // a filter over 4 MiB: multiplied element by element, tile by tile
    [InlineData(2, 1100, 64, 9, 40, false)] // the same, rows of tiles, in chunks of three blocks (the last of two)
    [InlineData(1, 300, 230, 7, 7, false)]  // the same, one block: F(2×2)'s split by four groups of output channels (the last of three)
    [InlineData(3, 8, 24, 5, 6, true)]      // four groups of six at once; blocks that span samples (gathered across planes)
    public void WinogradConv_computes_a_padded_3x3_convolution(int samples, int channels, int outputs, int height, int width, bool constantWeights)
    {
        var x = Parity.RandomInput([samples * channels * height * width], 42, -1, 1);
        var scale = 1.5f / MathF.Sqrt(channels * 9); // outputs of about one whatever the channels, as initialised layers give
        var w = Parity.RandomInput([outputs * channels * 9], 43, -scale, scale);
        var expected = Convolution3x3(x, w, samples, channels, outputs, height, width);
        (string, float[], long[])[] inputs = constantWeights
            ? [("x", x, [samples, channels, height, width])]
            : [("x", x, [samples, channels, height, width]), ("w", w, [outputs, channels, 3, 3])];
        foreach (var tile in Tiles)
        {
            var model = new OnnxTestModel(13, [-1, channels, height, width]);
            model = constantWeights ? model.Initializer("w", w, outputs, channels, 3, 3) : model.Input("w", TensorProto.Types.DataType.Float, outputs, channels, 3, 3);
            using var session = TestSessions.Open(InNativeDomain(model.Node(NativeOps.WinogradConv, ["x", "w"], ["y"], Int("tile", tile)).Output("y").Model()));
            Assert.Equal(new[] { -1, outputs, height, width }, session.OutputMetadata["y"].Dimensions);
            AssertRuns(session, expected, Tolerance(tile), inputs);
        }
    }

    /// <summary>WinogradConv's two tile sizes: F(2×2, 3×3) and F(4×4, 3×3).</summary>
    private static readonly int[] Tiles = [2, 4];

    /// <summary>
    /// The largest error against float64 each tile may have on these outputs of about one: float32's
    /// rounding of the sums for F(2×2) (2.6e-6); F(4×4)'s transforms round more, 1.05e-5 at 1,100
    /// channels with 16-float vectors and 1.8e-5 with 8-float ones, whose sums over the channels are
    /// one chain (Lavin's interpolation points: 2.7e-5 and 5.2e-5), still far below what the
    /// engine's checks allow (2%).
    /// </summary>
    private static double Tolerance(int tile) => tile == 4 ? 3e-5 : 1e-5;

    /// <summary>
    /// A forward's fused WinogradConv: max(convolution + B + R, 0) against float64, with the bias
    /// and the residual, the bias alone and neither (only a last input may be left out); rows written
    /// a block at a time (64 columns; 40 for F(2×2) without AVX-512), run by run (40 columns: F(2×2)'s
    /// blocks span two rows of 20 tiles where AVX-512 runs) and tile by tile (7×7, several samples to a block).
    /// </summary>
    [Theory]
    [InlineData(2, 5, 7, 9, 40, true, true, true)]
    [InlineData(2, 5, 7, 9, 64, true, true, true)]  // F(2×2)'s rows of tiles (32 tiles a row)
    [InlineData(2, 5, 7, 10, 70, true, true, true)] // F(4×4)'s rows of tiles
    [InlineData(3, 6, 8, 7, 7, true, true, true)]
    [InlineData(2, 4, 5, 6, 33, true, false, true)]
    [InlineData(2, 4, 5, 6, 6, false, false, true)]
    [InlineData(2, 300, 230, 7, 7, true, true, true)] // a filter over 4 MiB: products made element by element
    [InlineData(1, 300, 220, 7, 7, true, true, true)] // the same, one block: F(2×2)'s written by each four groups' task
    public void WinogradConv_adds_the_bias_and_the_residual_then_rectifies(int samples, int channels, int outputs, int height, int width,
        bool withBias, bool withResidual, bool relu)
    {
        var x = Parity.RandomInput([samples * channels * height * width], 52, -1, 1);
        var scale = MathF.Min(0.5f, 1.5f / MathF.Sqrt(channels * 9)); // sums of about one, within float32's rounding of 1e-5
        var w = Parity.RandomInput([outputs * channels * 9], 53, -scale, scale);
        var bias = Parity.RandomInput([outputs], 54, -1, 1);
        var residual = Parity.RandomInput([samples * outputs * height * width], 55, -1, 1);

        var expected = Convolution3x3(x, w, samples, channels, outputs, height, width);
        var plane = height * width;
        for (var i = 0; i < expected.Length; i++)
        {
            var value = expected[i] + (withBias ? bias[i / plane % outputs] : 0) + (withResidual ? residual[i] : 0);
            expected[i] = relu ? Math.Max(value, 0) : value;
        }
        if (relu) Assert.Contains(expected, v => v == 0); // the rectifier closes some cells
        (string, float[], long[])[] inputs = withResidual
            ? [("x", x, [samples, channels, height, width]), ("r", residual, [samples, outputs, height, width])]
            : [("x", x, [samples, channels, height, width])];
        foreach (var tile in Tiles)
        {
            var model = new OnnxTestModel(13, [-1, channels, height, width]).Initializer("w", w, outputs, channels, 3, 3)
                .Initializer("b", bias, outputs).Input("r", TensorProto.Types.DataType.Float, -1, outputs, height, width)
                .Node(NativeOps.WinogradConv, ["x", "w", .. withBias || withResidual ? ["b"] : Array.Empty<string>(), .. withResidual ? ["r"] : Array.Empty<string>()],
                    ["y"], Int("relu", relu ? 1 : 0), Int("tile", tile))
                .Output("y").Model();
            using var session = TestSessions.Open(InNativeDomain(model));
            AssertRuns(session, expected, Tolerance(tile), inputs);
        }
    }

    /// <summary>
    /// A backward's fused WinogradConv: convolution + R, gated by the rectifier output G (each cell
    /// where 0 &lt; G &lt; upper, its positive part for rectify = 2, else 0) against float64; B and
    /// R left out as tensors of no elements; G at exactly 0 and at upper closes its cell. Rows
    /// written a block at a time (64 columns) and run by run (40 columns where AVX-512 runs, 7×7 and
    /// 14×14: several rows of tiles to a block), with both tile sizes.
    /// </summary>
    [Theory]
    [InlineData(2, 5, 7, 9, 40, true, 2, float.PositiveInfinity)]
    [InlineData(2, 5, 7, 9, 64, true, 2, float.PositiveInfinity)] // F(2×2)'s rows of tiles (32 tiles a row)
    [InlineData(2, 5, 7, 9, 40, false, 1, float.PositiveInfinity)]
    [InlineData(3, 6, 8, 7, 7, true, 2, 1.5f)]
    [InlineData(2, 16, 16, 14, 14, true, 1, 1.5f)]
    [InlineData(1, 4, 5, 14, 14, false, 2, float.PositiveInfinity)]
    [InlineData(1, 300, 230, 7, 7, true, 2, 1.5f)] // a filter over 4 MiB, one block
    public void WinogradConv_adds_the_residual_then_gates_by_the_rectifier(int samples, int channels, int outputs, int height, int width,
        bool withResidual, int rectify, float upper)
    {
        var x = Parity.RandomInput([samples * channels * height * width], 62, -1, 1);
        var scale = MathF.Min(0.5f, 1.5f / MathF.Sqrt(channels * 9));
        var w = Parity.RandomInput([outputs * channels * 9], 63, -scale, scale);
        var residual = Parity.RandomInput([samples * outputs * height * width], 64, -1, 1);
        var gate = Parity.RandomInput([samples * outputs * height * width], 65, -1, 2);
        for (var i = 0; i < gate.Length; i += 7) gate[i] = 0;
        if (float.IsFinite(upper))
            for (var i = 3; i < gate.Length; i += 11) gate[i] = upper;

        var expected = Convolution3x3(x, w, samples, channels, outputs, height, width);
        for (var i = 0; i < expected.Length; i++)
        {
            var value = expected[i] + (withResidual ? residual[i] : 0);
            expected[i] = gate[i] > 0 && gate[i] < upper ? rectify == 2 ? Math.Max(value, 0) : value : 0;
        }
        Assert.Contains(expected, v => rectify == 1 ? v < 0 : v > 0); // the gradient's gate passes negative cells too
        (string, float[], long[])[] inputs = withResidual
            ? [("x", x, [samples, channels, height, width]), ("r", residual, [samples, outputs, height, width]), ("g", gate, [samples, outputs, height, width])]
            : [("x", x, [samples, channels, height, width]), ("g", gate, [samples, outputs, height, width])];
        foreach (var tile in Tiles)
        {
            var model = new OnnxTestModel(13, [-1, channels, height, width]).Initializer("w", w, outputs, channels, 3, 3)
                .Initializer("none", Array.Empty<float>(), 0).Input("r", TensorProto.Types.DataType.Float, -1, outputs, height, width)
                .Input("g", TensorProto.Types.DataType.Float, -1, outputs, height, width)
                .Node(NativeOps.WinogradConv, ["x", "w", "none", withResidual ? "r" : "none", "g"], ["y"], Int("tile", tile), Int("rectify", rectify),
                    OnnxTestModel.Float("upper", upper))
                .Output("y").Model();
            using var session = TestSessions.Open(InNativeDomain(model));
            AssertRuns(session, expected, Tolerance(tile), inputs);
        }
    }

    /// <summary>A bias or a residual of the wrong shape is an error, never a read out of range.</summary>
    [Theory]
    [InlineData(new long[] { 4 }, new long[] { 2, 5, 6, 6 })]
    [InlineData(new long[] { 5 }, new long[] { 2, 5, 6, 5 })]
    [InlineData(new long[] { 5 }, new long[] { 1, 5, 6, 6 })]
    public void WinogradConv_refuses_a_bias_or_residual_that_does_not_fit(long[] biasShape, long[] residualShape)
    {
        var model = InNativeDomain(new OnnxTestModel(13, [-1, 3, 6, 6]).Initializer("w", new float[5 * 3 * 9], 5, 3, 3, 3)
            .Input("b", TensorProto.Types.DataType.Float, -1).Input("r", TensorProto.Types.DataType.Float, -1, -1, -1, -1)
            .Node(NativeOps.WinogradConv, ["x", "w", "b", "r"], ["y"]).Output("y").Model());
        using var session = TestSessions.Open(model);
        var error = Assert.Throws<OnnxRuntimeException>(() => AssertRuns(session, [], ("x", new float[2 * 3 * 36], [2, 3, 6, 6]),
            ("b", new float[biasShape[0]], biasShape), ("r", new float[residualShape.Aggregate(1L, (a, b) => a * b)], residualShape)));
        Assert.Contains(biasShape[0] != 5 ? "WinogradConv: B must be [K]" : "WinogradConv: R must be Y's shape", error.Message);
    }

    /// <summary>A float64 3×3 convolution, stride 1, one cell of zero padding.</summary>
    private static double[] Convolution3x3(float[] x, float[] w, int samples, int channels, int outputs, int height, int width)
    {
        var expected = new double[samples * outputs * height * width];
        for (var n = 0; n < samples; n++)
        for (var k = 0; k < outputs; k++)
        for (var i = 0; i < height; i++)
        for (var j = 0; j < width; j++)
        {
            double sum = 0;
            for (var c = 0; c < channels; c++)
            for (var a = 0; a < 3; a++)
            for (var b = 0; b < 3; b++)
            {
                var (y, z) = (i + a - 1, j + b - 1);
                if (y >= 0 && y < height && z >= 0 && z < width)
                    sum += (double)x[((n * channels + c) * height + y) * width + z] * w[((k * channels + c) * 3 + a) * 3 + b];
            }
            expected[((n * outputs + k) * height + i) * width + j] = sum;
        }
        return expected;
    }

    /// <summary>Weights fed at run time that are not [K, C, 3, 3] for X's C are an error, never a read out of range.</summary>
    [Theory]
    [InlineData(4, 3, 3)] // C of 4 for X's 3
    [InlineData(3, 5, 5)] // a 5×5 kernel
    public void WinogradConv_refuses_weights_that_do_not_fit(int channels, int kh, int kw)
    {
        var model = InNativeDomain(new OnnxTestModel(13, [-1, 3, 6, 6]).Input("w", TensorProto.Types.DataType.Float, -1, -1, -1, -1)
            .Node(NativeOps.WinogradConv, ["x", "w"], ["y"]).Output("y").Model());
        using var session = TestSessions.Open(model);
        var error = Assert.Throws<OnnxRuntimeException>(() => AssertRuns(session, [],
            ("x", new float[2 * 3 * 36], [2, 3, 6, 6]), ("w", new float[2 * channels * kh * kw], [2, channels, kh, kw])));
        Assert.Contains("WinogradConv: X must be [N, C, H, W] and W [K, C, 3, 3]", error.Message);
    }

    /// <summary>Calls of the kernels that do not fit, and a word each refusal must give.</summary>
    public static IEnumerable<object[]> Misfits()
    {
        yield return ["MaxPoolGrad with a gradient of the wrong size", InNativeDomain(new OnnxTestModel(13, [1, 1, 4, 4])
            .Node("MaxPoolGrad", ["x", "x"], ["y"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "pooled size"];
        yield return ["MaxPoolGrad with an unknown rectify", InNativeDomain(new OnnxTestModel(13, [1, 1, 4, 4])
            .Node("MaxPoolGrad", ["x", "x"], ["y"], Ints("kernel_shape", 1, 1), Ints("strides", 1, 1), Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1),
                Int("rectify", 5))
            .Output("y").Model()).ToByteArray(), "rectify"];
        yield return ["MaxPoolGrad without attributes", InNativeDomain(new OnnxTestModel(13, [1, 1, 4, 4])
            .Node("MaxPoolGrad", ["x", "x"], ["y"]).Output("y").Model()).ToByteArray(), "MaxPoolGrad"];
        yield return ["WinogradConv with a gate and no rectify", InNativeDomain(new OnnxTestModel(13, [1, 2, 4, 4]).Initializer("w", new float[18], 1, 2, 3, 3)
            .Initializer("none", Array.Empty<float>(), 0).Initializer("g", new float[16], 1, 1, 4, 4)
            .Node("WinogradConv", ["x", "w", "none", "none", "g"], ["y"]).Output("y").Model()).ToByteArray(), "gate"];
        yield return ["WinogradConv with rectify and no gate", InNativeDomain(new OnnxTestModel(13, [1, 2, 4, 4]).Initializer("w", new float[18], 1, 2, 3, 3)
            .Node("WinogradConv", ["x", "w"], ["y"], Int("rectify", 2)).Output("y").Model()).ToByteArray(), "gate"];
        yield return ["WinogradConv with a gate of another shape", InNativeDomain(new OnnxTestModel(13, [1, 2, 4, 4]).Initializer("w", new float[18], 1, 2, 3, 3)
            .Initializer("none", Array.Empty<float>(), 0).Initializer("g", new float[15], 1, 1, 3, 5)
            .Node("WinogradConv", ["x", "w", "none", "none", "g"], ["y"], Int("rectify", 1)).Output("y").Model()).ToByteArray(), "G must be Y's shape"];
        yield return ["WinogradConv with an unknown rectify", InNativeDomain(new OnnxTestModel(13, [1, 2, 4, 4]).Initializer("w", new float[18], 1, 2, 3, 3)
            .Initializer("none", Array.Empty<float>(), 0).Initializer("g", new float[16], 1, 1, 4, 4)
            .Node("WinogradConv", ["x", "w", "none", "none", "g"], ["y"], Int("rectify", 3)).Output("y").Model()).ToByteArray(), "rectify"];
        OnnxTestModel Kernel() => new OnnxTestModel(13, [1, 2, 4, 4]).Initializer("w", new float[18], 1, 2, 3, 3);
        yield return ["WinogradConv with stride 3", InNativeDomain(Kernel().Node("WinogradConv", ["x", "w"], ["y"], Int("stride", 3)).Output("y").Model()).ToByteArray(), "stride"];
        yield return ["WinogradConv with transposed 2", InNativeDomain(Kernel().Node("WinogradConv", ["x", "w"], ["y"], Int("transposed", 2))
            .Output("y").Model()).ToByteArray(), "transposed"];
        yield return ["WinogradConv transposed at stride 1 with a kernel of another shape", InNativeDomain(Kernel()
            .Node("WinogradConv", ["x", "w"], ["y"], Int("transposed", 1)).Output("y").Model()).ToByteArray(), "W [C, K, 3, 3]"];
        yield return ["WinogradConv transposed with an output padding of 2", InNativeDomain(Kernel()
            .Node("WinogradConv", ["x", "w"], ["y"], Int("stride", 2), Int("transposed", 1), Ints("output_padding", 0, 2)).Output("y").Model()).ToByteArray(), "output_padding"];
        yield return ["WinogradConv transposed with a kernel of another shape", InNativeDomain(Kernel()
            .Node("WinogradConv", ["x", "w"], ["y"], Int("stride", 2), Int("transposed", 1)).Output("y").Model()).ToByteArray(), "W [C, K, 3, 3]"];
        yield return ["WinogradConv transposed with a residual of another shape", InNativeDomain(new OnnxTestModel(13, [1, 2, 4, 4])
            .Initializer("w", new float[18], 2, 1, 3, 3).Initializer("none", Array.Empty<float>(), 0).Initializer("r", new float[64], 1, 1, 8, 8)
            .Node("WinogradConv", ["x", "w", "none", "r"], ["y"], Int("stride", 2), Int("transposed", 1)).Output("y").Model()).ToByteArray(), "R must be Y's shape"];
        OnnxTestModel Scatter(params long[] gateShape) => new OnnxTestModel(13, [1, 9, 4]).Initializer("none", Array.Empty<float>(), 0)
            .Initializer("g", new float[gateShape.Aggregate(1L, (a, b) => a * b)], gateShape);
        AttributeProto[] window = [Ints("image_shape", 4, 4), Ints("block_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1), Ints("dilations", 1, 1)];
        yield return ["Col2Im with a gate and no rectify", InNativeDomain(Scatter(1, 1, 4, 4).Node("Col2Im", ["x", "none", "g"], ["y"], window)
            .Output("y").Model()).ToByteArray(), "gate"];
        yield return ["Col2Im with rectify and no gate", InNativeDomain(Scatter(1, 1, 4, 4).Node("Col2Im", ["x"], ["y"], [.. window, Int("rectify", 1)])
            .Output("y").Model()).ToByteArray(), "gate"];
        yield return ["Col2Im with a gate of another shape", InNativeDomain(Scatter(1, 1, 4, 5).Node("Col2Im", ["x", "none", "g"], ["y"], [.. window, Int("rectify", 2)])
            .Output("y").Model()).ToByteArray(), "the image's shape"];
        yield return ["Col2Im with a residual of another shape", InNativeDomain(Scatter(1, 1, 5, 4).Node("Col2Im", ["x", "g"], ["y"], [.. window])
            .Output("y").Model()).ToByteArray(), "the image's shape"];
        yield return ["Col2Im with an unknown rectify", InNativeDomain(Scatter(1, 1, 4, 4).Node("Col2Im", ["x", "none", "g"], ["y"], [.. window, Int("rectify", 3)])
            .Output("y").Model()).ToByteArray(), "rectify"];
        yield return ["Col2Im with columns that are not the image's blocks", InNativeDomain(new OnnxTestModel(13, [1, 9, 4])
            .Node("Col2Im", ["x"], ["y"], Ints("image_shape", 5, 5), Ints("block_shape", 3, 3), Ints("strides", 1, 1), Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "blocks"];
        yield return ["Col2Im into an image of 2^80 cells", InNativeDomain(new OnnxTestModel(13, [1, 1, 1])
            .Node("Col2Im", ["x"], ["y"], Ints("image_shape", 1L << 40, 1L << 40), Ints("block_shape", 1, 1), Ints("strides", 1L << 40, 1L << 40),
                Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "overflow"];
        yield return ["Col2Im with overflowing pads", InNativeDomain(new OnnxTestModel(13, [1, 1, 1])
            .Node("Col2Im", ["x"], ["y"], Ints("image_shape", 2, 2), Ints("block_shape", 1, 1), Ints("strides", 1, 1),
                Ints("pads", long.MaxValue, long.MaxValue, long.MaxValue, long.MaxValue), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "Col2Im"];
        yield return ["DepthwiseCol2Im with a kernel of another shape", InNativeDomain(new OnnxTestModel(13, [1, 3, 2, 2])
            .Initializer("w", new float[27], 3, 1, 3, 3)
            .Node("DepthwiseCol2Im", ["x", "w"], ["y"], Ints("image_shape", 4, 4), Ints("block_shape", 2, 2), Ints("strides", 2, 2),
                Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "DepthwiseCol2Im"];
        yield return ["DepthwiseCol2Im with a gradient that is not the image's blocks", InNativeDomain(new OnnxTestModel(13, [1, 3, 3, 3])
            .Initializer("w", new float[12], 3, 1, 2, 2)
            .Node("DepthwiseCol2Im", ["x", "w"], ["y"], Ints("image_shape", 4, 4), Ints("block_shape", 2, 2), Ints("strides", 2, 2),
                Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "DepthwiseCol2Im"];
        yield return ["SparseConvTranspose with a kernel of another shape", InNativeDomain(new OnnxTestModel(13, [1, 3, 2, 2])
            .Initializer("w", new float[54], 3, 2, 3, 3)
            .Node("SparseConvTranspose", ["x", "w"], ["y"], Ints("image_shape", 4, 4), Ints("block_shape", 2, 2), Ints("strides", 2, 2),
                Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "SparseConvTranspose"];
        yield return ["SparseConvTranspose with a gradient that is not the image's blocks", InNativeDomain(new OnnxTestModel(13, [1, 3, 3, 3])
            .Initializer("w", new float[24], 3, 2, 2, 2)
            .Node("SparseConvTranspose", ["x", "w"], ["y"], Ints("image_shape", 4, 4), Ints("block_shape", 2, 2), Ints("strides", 2, 2),
                Ints("pads", 0, 0, 0, 0), Ints("dilations", 1, 1))
            .Output("y").Model()).ToByteArray(), "SparseConvTranspose"];
        yield return ["SparseConvTranspose with a kernel row dilated past 2^20 cells", InNativeDomain(new OnnxTestModel(13, [1, 1, 1, 1])
            .Initializer("w", new float[2], 1, 1, 1, 2)
            .Node("SparseConvTranspose", ["x", "w"], ["y"], Ints("image_shape", 1, 1L << 21), Ints("block_shape", 1, 2), Ints("strides", 1, 1),
                Ints("pads", 0, 0, 0, 1L << 21), Ints("dilations", 1, 1L << 21))
            .Output("y").Model()).ToByteArray(), "2^20"];
    }

    /// <summary>
    /// Each kernel checks its call before it touches memory: a call that does not fit is an error
    /// (when the session is made or when it runs), never a read out of range.
    /// </summary>
    [Theory]
    [MemberData(nameof(Misfits))]
    public void A_call_that_does_not_fit_is_refused(string what, byte[] onnx, string reason)
    {
        var model = ModelProto.Parser.ParseFrom(onnx);
        var shape = model.Graph.Input[0].Type.TensorType.Shape.Dim.Select(d => d.DimValue).ToArray();
        var error = Assert.Throws<OnnxRuntimeException>(() =>
        {
            using var session = TestSessions.Open(model);
            AssertRuns(session, [], ("x", new float[shape.Aggregate(1L, (a, b) => a * b)], shape));
        });
        Assert.True(error.Message.Contains(reason, StringComparison.OrdinalIgnoreCase), $"{what}: '{reason}' not in: {error.Message}");
    }

    /// <summary>The model's one node as the engine's own kernel (domain <see cref="NativeOps.Domain"/>).</summary>
    private static ModelProto InNativeDomain(ModelProto proto)
    {
        proto.Graph.Node[0].Domain = NativeOps.Domain;
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });
        return proto;
    }

    /// <summary>
    /// MaxPoolGrad against a reference written here: each window's gradient to its first strict
    /// maximum in window order (rows, then columns; padding never wins), then the rectifier's gate.
    /// Inputs take five values only, so most windows tie; rows of 8 pooled columns and more run the
    /// kernel's vector loops and their tails (GradientRuleTests' random inputs never tie).
    /// </summary>
    [Theory]
    [InlineData(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 23, 37, 0)] // ResNet's stem pool, 19 columns
    [InlineData(3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 16, 32, 2)] // guided backprop's gate, 16 columns (no tail)
    [InlineData(3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, 21, 1)]  // stride 1, 21 columns, the gradient's gate
    [InlineData(2, 3, 1, 2, 2, 1, 0, 2, 1, 0, 12, 29, 2)] // dilated rows, uneven pads
    [InlineData(3, 2, 2, 3, 1, 1, 1, 0, 1, 1, 10, 40, 0)] // column stride 3: one window at a time
    public void MaxPoolGrad_sends_each_gradient_to_its_first_maximum(long kh, long kw, long sh, long sw, long dh, long dw, long top, long left,
        long bottom, long right, long height, long width, long rectify)
    {
        const int samples = 2, channels = 3;
        const float upper = 3.5f; // some inputs (4) saturate where the gate closes above
        var w = new KernelWindow(kh, kw, sh, sw, dh, dw, top, left, bottom, right, height, width);
        var (rows, columns) = (w.Rows, w.Columns);
        var random = new Random((int)(height * 100 + width));
        var x = Enumerable.Range(0, (int)(samples * channels * height * width)).Select(_ => (float)random.Next(-1, 4 + 1)).ToArray();
        var gradient = Parity.RandomInput([samples * channels * rows * columns], 34, -1, 1);
        var model = InNativeDomain(new OnnxTestModel(13, [-1, channels, height, width]).Input("dy", TensorProto.Types.DataType.Float, -1, channels, rows, columns)
            .Node(NativeOps.MaxPoolGrad, ["x", "dy"], ["y"], Ints("kernel_shape", kh, kw), Ints("strides", sh, sw),
                Ints("pads", top, left, bottom, right), Ints("dilations", dh, dw), Int("rectify", rectify),
                OnnxTestModel.Float("upper", upper))
            .Output("y").Model());

        var expected = new double[x.Length];
        for (var plane = 0; plane < samples * channels; plane++)
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < columns; j++)
        {
            var (best, at) = (double.NegativeInfinity, -1L);
            for (var a = 0; a < kh; a++)
            for (var b = 0; b < kw; b++)
            {
                var (y, c) = (i * sh - top + a * dh, j * sw - left + b * dw);
                if (y < 0 || y >= height || c < 0 || c >= width) continue;
                var cell = (plane * height + y) * width + c;
                if (x[cell] > best) (best, at) = (x[cell], cell);
            }
            if (at >= 0) expected[at] += gradient[(plane * rows + i) * columns + j];
        }
        for (var k = 0; k < x.Length && rectify != 0; k++)
            expected[k] = x[k] > 0 && x[k] < upper ? rectify == 2 ? Math.Max(expected[k], 0) : expected[k] : 0;

        w.AssertComputes(model, expected, channels, ("x", x, [samples, channels, height, width]), ("dy", gradient, [samples, channels, rows, columns]));
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
            ServiceFactory.DeleteServiceFolder(store);
        }
    }
}
