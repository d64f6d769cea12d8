using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// The race of the kernel's stride-2 forms (<see cref="NativeOps.WinogradConv"/> with stride 2, and
/// transposed: the five-product algorithm) for a one-sample 3×3 convolution with one cell of
/// padding: the forward against ONNX Runtime's strided <c>Conv</c>, the input gradient against what
/// a backward writes otherwise, the product of the transposed kernel and the gradient with the
/// engine's scatter (<see cref="Ops.ColumnGradient"/>). Neither side sits between blocked
/// neighbours in a pass (the convolution's input and output are a stride-1 kernel's, in the plain
/// layout), so each single node is timed as it is. On Zen 4 the input gradient took 0.73–0.86× the
/// scatter's time on ResNet's three shapes in a pass, the forward 0.9–1.05× ONNX Runtime's (bench/analysis.md).
/// </summary>
public sealed partial class WinogradRace
{
    private static readonly ConcurrentDictionary<(long Outputs, long Inputs, long Height, long Width), Lazy<StridedOutcome>> StridedOutcomes = new();

    /// <summary>
    /// A stride-2 race's times (ms, each side's fastest round): ONNX Runtime's convolution and the
    /// kernel's stride-2 form; the product-and-scatter input gradient and the kernel's transposed form
    /// (∞ where the race failed).
    /// </summary>
    public readonly record struct StridedOutcome(double Convolution, double Kernel, double Columns, double Transposed)
    {
        /// <summary>How many of its <see cref="Rounds"/> held the process's own runs off.</summary>
        public int RoundsAlone { get; init; }

        /// <summary>The kernel's time over what it would replace: in a forward, or in a backward (the input gradient).</summary>
        public double Ratio(bool forward) => forward ? Kernel / Convolution : Transposed / Columns;

        /// <summary>A race that failed (a session would not open or run): the kernel never wins.</summary>
        public static StridedOutcome Failed => new(1, double.PositiveInfinity, 1, double.PositiveInfinity);
    }

    /// <summary>The stride-2 races run so far in this process, by shape (outputs, inputs, the input's height and width).</summary>
    public static IEnumerable<((long Outputs, long Inputs, long Height, long Width) Shape, StridedOutcome Outcome)> RacedStrided =>
        StridedOutcomes.Where(p => p.Value.IsValueCreated).Select(p => (p.Key, p.Value.Value));

    /// <summary>
    /// Whether the kernel's stride-2 form beats what it would replace here for a stride-2 convolution
    /// of a sample of <paramref name="inputs"/> × <paramref name="height"/> × <paramref name="width"/>
    /// into <paramref name="outputs"/> channels: in a forward, or its input gradient in a backward.
    /// </summary>
    public bool FasterStrided(long outputs, long inputs, long height, long width, bool forward) =>
        RaceStrided(outputs, inputs, height, width).Ratio(forward) <= (forward ? Margin : TransposedMargin);

    /// <summary>
    /// The transposed form is taken wherever it wins its race. Its single node understates what it
    /// saves in a pass, where the scatter's columns (nine times the gradient) come from memory: on
    /// Zen 4 its races read 0.78–0.90 and the pass's own nodes 0.73–0.86 (bench/analysis.md). Its
    /// transforms only add, so its sums round as the product's do (NativeOpsTests: within 1e-5 of float64).
    /// </summary>
    public const double TransposedMargin = 1.0;

    /// <summary>The stride-2 race for a shape (run on first asking; sides beyond <see cref="MaxSide"/> raced at it).</summary>
    public StridedOutcome RaceStrided(long outputs, long inputs, long height, long width)
    {
        var key = (outputs, inputs, Math.Min(height, MaxSide), Math.Min(width, MaxSide));
        return StridedOutcomes.GetOrAdd(key, k => new Lazy<StridedOutcome>(() => RunStrided(k.Outputs, k.Inputs, k.Height, k.Width))).Value;
    }

    private StridedOutcome RunStrided(long outputs, long inputs, long height, long width)
    {
        var (halfHeight, halfWidth) = ((height + 1) / 2, (width + 1) / 2);
        long[] input = [1, inputs, height, width], output = [1, outputs, halfHeight, halfWidth], weightShape = [outputs, inputs, 3, 3];
        var random = new Random(1);
        var weights = Weights(random, outputs, inputs);
        using var sessions = new RaceSessions(open);
        try
        {
            using var x = OrtValue.CreateTensorValueFromMemory(Noise(random, inputs * height * width), input);
            using var gradient = OrtValue.CreateTensorValueFromMemory(Noise(random, outputs * halfHeight * halfWidth), output);
            using var runOptions = new RunOptions();
            var (pads, strides) = (BackwardGraph.Attribute("pads", [1, 1, 1, 1]), BackwardGraph.Attribute("strides", [2, 2]));
            var stride = BackwardGraph.Attribute("stride", 2);
            var conv = sessions.Open(Model(input, output, weightShape, weights, "Conv", "", pads, strides));
            var kernel = sessions.Open(Model(input, output, weightShape, weights, NativeOps.WinogradConv, NativeOps.Domain, stride));
            var columns = sessions.Open(ColumnsModel(output, input, weights));
            var transposed = sessions.Open(Model(output, input, weightShape, weights, NativeOps.WinogradConv, NativeOps.Domain, stride,
                BackwardGraph.Attribute("transposed", 1), BackwardGraph.Attribute("output_padding", [height - (2 * halfHeight - 1), width - (2 * halfWidth - 1)])));
            var (times, roundsAlone) = TimeInTurn([(conv, x), (kernel, x), (columns, gradient), (transposed, gradient)], runOptions);
            return new StridedOutcome(times[0].Min(), times[1].Min(), times[2].Min(), times[3].Min()) { RoundsAlone = roundsAlone };
        }
        catch (OnnxRuntimeException)
        {
            return StridedOutcome.Failed;
        }
    }

    /// <summary>
    /// A stride-2 3×3 convolution's input gradient (of <paramref name="input"/>'s shape) from its
    /// output's (<paramref name="gradient"/>'s) as a backward writes it without the kernel: the
    /// transposed weights [C·9, K] times the gradient's cells, then <see cref="NativeOps.Col2Im"/>.
    /// </summary>
    private static ModelProto ColumnsModel(long[] gradient, long[] input, float[] weights)
    {
        var (outputs, inputs) = (gradient[1], input[1]);
        var transposed = new float[weights.Length];
        for (var k = 0; k < outputs; k++)
        for (var c = 0; c < inputs; c++)
        for (var tap = 0; tap < 9; tap++)
            transposed[(c * 9 + tap) * outputs + k] = weights[(k * inputs + c) * 9 + tap];
        TensorProto Constant(string name, long[] dims, ByteString data, TensorProto.Types.DataType type) => new() { Name = name, DataType = (int)type, Dims = { dims }, RawData = data };
        return Graph(
            new GraphProto
            {
                Initializer =
                {
                    Constant("wt", [inputs * 9, outputs], ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(transposed.AsSpan())), TensorProto.Types.DataType.Float),
                    Constant("cells", [3], ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(new long[] { 1, outputs, gradient[2] * gradient[3] }.AsSpan())),
                        TensorProto.Types.DataType.Int64),
                },
                Node =
                {
                    new NodeProto { OpType = "Reshape", Input = { "x", "cells" }, Output = { "flat" } },
                    new NodeProto { OpType = "MatMul", Input = { "wt", "flat" }, Output = { "columns" } },
                    new NodeProto
                    {
                        OpType = NativeOps.Col2Im, Domain = NativeOps.Domain, Input = { "columns" }, Output = { "y" },
                        Attribute =
                        {
                            BackwardGraph.Attribute("image_shape", input[2..]), BackwardGraph.Attribute("block_shape", [3, 3]),
                            BackwardGraph.Attribute("strides", [2, 2]), BackwardGraph.Attribute("pads", [1, 1, 1, 1]), BackwardGraph.Attribute("dilations", [1, 1]),
                        },
                    },
                },
            },
            gradient, input, new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });
    }
}
