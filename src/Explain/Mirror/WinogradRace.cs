using System.Collections.Concurrent;
using System.Diagnostics;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// Whether <see cref="NativeOps.WinogradConv"/> beats ONNX Runtime's own <c>Conv</c> on this host
/// for a one-sample convolution, measured once per process and shape. Which one wins depends on
/// the CPU: on Zen 4, whose AVX-512 runs at AVX2's rate, F(4×4) took 0.61–0.65× ONNX Runtime's time
/// on ResNet's 64- and 128-channel shapes; on Zen 5, whose AVX-512 runs at twice that rate, ONNX
/// Runtime's direct convolution was faster on all but the 256-channel F(4×4), and a guided pass on
/// resnet18 took 25–28 ms with the kernel's every shape against 22–23 without (bench/analysis.md).
/// ONNX Runtime's side is its convolution as a pass runs it, in its blocked layout: its single-node
/// run less the reorders into and out of that layout, timed on their own. The reorders go to the
/// kernel's side where the kernel sits between blocked neighbours: a forward's F(2×2) between ONNX
/// Runtime's convolutions (timed alone, the race had taken the kernel for shapes that then made
/// resnet18's pass slower). A backward's kernel sits between the engine's own kernels, which read
/// and write the plain layout, and is charged none: charged them, resnet18's guided pass
/// kept ONNX Runtime's convolutions at 64 and 128 channels and took 21.4–21.9 ms, against 21.1–21.3
/// with the kernel for all of them (bench/analysis.md, forty-fifth pass).
/// </summary>
/// <param name="open">Opens a session as the passes' sessions are opened (the same threads).</param>
public sealed partial class WinogradRace(Func<ModelProto, InferenceSession> open)
{
    /// <summary>The kernel is taken where its time is at most this share of ONNX Runtime's: a tie keeps ONNX Runtime's convolution, whose sums are rounded less.</summary>
    public const double Margin = 0.9;

    /// <summary>
    /// Image sides beyond this are raced at this side: the time per cell barely changes past it,
    /// and a race on 224² would cost a large model's import tens of milliseconds a shape.
    /// </summary>
    public const long MaxSide = 56;

    /// <summary>The graph name of the race's own single-node models (not a pass's sessions).</summary>
    public const string GraphName = "winograd_race";

    private const int WarmUps = 2;

    /// <summary>The rounds a race times, each side once a round.</summary>
    public const int Rounds = 11;

    /// <summary>
    /// How long a round waits for the process's own runs to pause (<see cref="OrtRunGate.Measure"/>):
    /// a few predictions of a large model; under a load that never pauses it times among them.
    /// </summary>
    public static readonly TimeSpan Patience = TimeSpan.FromMilliseconds(100);

    private static readonly ConcurrentDictionary<(long Outputs, long Inputs, long Height, long Width), Lazy<Outcome>> Outcomes = new();

    /// <summary>
    /// A race's times (ms, each side's fastest round): ONNX Runtime's convolution in its blocked
    /// layout, the reorders into and out of that layout its single-node run adds, and the kernel's
    /// with F(2×2) and F(4×4) tiles (∞ where the race failed, or F(4×4) was not raced).
    /// </summary>
    public readonly record struct Outcome(double Convolution, double Reorders, double Kernel2, double Kernel4)
    {
        /// <summary>How many of its <see cref="Rounds"/> held the process's own runs off (<see cref="OrtRunGate.Measure"/>); the others timed among them.</summary>
        public int RoundsAlone { get; init; }

        /// <summary>
        /// The kernel's time with <paramref name="tile"/> over ONNX Runtime's convolution's: a
        /// forward's kernel sits between ONNX Runtime's blocked convolutions and is charged the
        /// layout's reorders; a backward's sits between the engine's own kernels, which read and
        /// write the plain layout, and is charged none.
        /// </summary>
        public double Ratio(long tile, bool forward) => ((tile == WinogradConvolutions.SmallTile ? Kernel2 : Kernel4) + (forward ? Reorders : 0)) / Convolution;

        /// <summary>A race that failed (a session would not open or run): the kernel never wins.</summary>
        public static Outcome Failed => new(1, 0, double.PositiveInfinity, double.PositiveInfinity);
    }

    /// <summary>The races run so far in this process, by shape (outputs, inputs, height, width).</summary>
    public static IEnumerable<((long Outputs, long Inputs, long Height, long Width) Shape, Outcome Outcome)> Raced =>
        Outcomes.Where(p => p.Value.IsValueCreated).Select(p => (p.Key, p.Value.Value));

    /// <summary>
    /// Whether the kernel with <paramref name="tile"/> (2 or 4) is faster here on a sample of
    /// <paramref name="inputs"/> × <paramref name="height"/> × <paramref name="width"/> into
    /// <paramref name="outputs"/> channels, in a forward or in a backward (<see cref="Outcome.Ratio"/>).
    /// </summary>
    public bool Faster(long outputs, long inputs, long height, long width, long tile, bool forward) =>
        Race(outputs, inputs, height, width).Ratio(tile, forward) <= Margin;

    /// <summary>The race for a shape (run on first asking; sides beyond <see cref="MaxSide"/> raced at it).</summary>
    public Outcome Race(long outputs, long inputs, long height, long width)
    {
        var key = (outputs, inputs, Math.Min(height, MaxSide), Math.Min(width, MaxSide));
        return Outcomes.GetOrAdd(key, k => new Lazy<Outcome>(() => Run(k.Outputs, k.Inputs, k.Height, k.Width))).Value;
    }

    private Outcome Run(long outputs, long inputs, long height, long width)
    {
        long[] shape = [1, inputs, height, width];
        var random = new Random(1);
        var weights = Weights(random, outputs, inputs);
        using var sessions = new RaceSessions(open);
        try
        {
            using var x = OrtValue.CreateTensorValueFromMemory(Noise(random, inputs * height * width), shape);
            using var runOptions = new RunOptions();
            var pads = BackwardGraph.Attribute("pads", [1, 1, 1, 1]);
            var ort = sessions.Open(Model(shape, outputs, weights, "Conv", "", pads));
            var reorders = sessions.Add(ReorderSession(x, shape, runOptions));
            var tile2 = sessions.Open(Model(shape, outputs, weights, NativeOps.WinogradConv, NativeOps.Domain, BackwardGraph.Attribute("tile", WinogradConvolutions.SmallTile)));
            // F(4×4) only where a one-sample pass may take it: a wider filter's session alone transforms 36 MiB.
            var tile4 = sessions.Open(outputs * inputs <= WinogradConvolutions.OneSampleLargeTileProducts
                ? Model(shape, outputs, weights, NativeOps.WinogradConv, NativeOps.Domain, BackwardGraph.Attribute("tile", WinogradConvolutions.LargeTile))
                : null);
            var (times, roundsAlone) = TimeInTurn([(ort, x), (reorders, x), (tile2, x), (tile4, x)], runOptions);
            // The reorder side moves the input's channels in and out; a convolution's reorders, its
            // input's in and its output's out. Without a blocked layout there is nothing to reorder.
            var share = (inputs + outputs) / (2.0 * inputs);
            return FromRounds(times[0], reorders is null ? [0] : [.. times[1].Select(t => t * share)], times[2], times[3]) with { RoundsAlone = roundsAlone };
        }
        catch (OnnxRuntimeException)
        {
            return Outcome.Failed;
        }
    }

    /// <summary>Random weights of a 3×3 convolution [outputs, inputs, 3, 3], its outputs of about its inputs' size.</summary>
    private static float[] Weights(Random random, long outputs, long inputs)
    {
        var weights = new float[outputs * inputs * 9];
        foreach (ref var w in weights.AsSpan()) w = (float)(random.NextDouble() - 0.5) / inputs;
        return weights;
    }

    /// <summary>Random values in [-0.5, 0.5): a race's input.</summary>
    private static float[] Noise(Random random, long count)
    {
        var values = new float[count];
        foreach (ref var v in values.AsSpan()) v = (float)random.NextDouble() - 0.5f;
        return values;
    }

    /// <summary>The sessions of one race, disposed with it.</summary>
    private sealed class RaceSessions(Func<ModelProto, InferenceSession> open) : IDisposable
    {
        private readonly List<InferenceSession> _sessions = [];

        /// <summary>A session of <paramref name="model"/> (null: none).</summary>
        public InferenceSession? Open(ModelProto? model) => model is null ? null : Add(open(model));

        /// <summary>Owns <paramref name="session"/> from now on (null: none).</summary>
        public InferenceSession? Add(InferenceSession? session)
        {
            if (session is not null) _sessions.Add(session);
            return session;
        }

        public void Dispose()
        {
            foreach (var session in _sessions) session.Dispose();
        }
    }

    /// <summary>
    /// Each side's time in each of <see cref="Rounds"/> rounds (ms; ∞ for a side that is null), and
    /// how many rounds held the process's own runs off.
    /// </summary>
    private static (double[][] Times, int RoundsAlone) TimeInTurn((InferenceSession? Session, OrtValue Input)[] sides, RunOptions runOptions)
    {
        double Time((InferenceSession? Session, OrtValue Input) side)
        {
            var start = Stopwatch.GetTimestamp();
            side.Session!.Run(runOptions, ["x"], [side.Input], ["y"]).Dispose();
            return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        for (var i = 0; i < WarmUps; i++)
            foreach (var side in sides.Where(s => s.Session is not null)) Time(side);
        // Each round times the sides in turn, starting one further along: the host's drift falls on
        // all of them, and no side runs twice in a row, so that a wide filter has left the caches
        // by its next run, as in a pass, where each node's weights come from memory. A round holds
        // the process's own runs off where they pause within its patience, and as they flush the
        // caches, first runs its first side untimed: timed cold, the 64-channel forward's F(2×2)
        // still lost 2 of 15 races beside predictions, warmed 0 of 11 (fifty-fifth pass).
        var times = sides.Select(_ => Enumerable.Repeat(double.PositiveInfinity, Rounds).ToArray()).ToArray();
        var roundsAlone = 0;
        for (var round = 0; round < Rounds; round++)
        {
            using var gate = OrtRunGate.Measure(Patience);
            if (gate.Alone) roundsAlone++;
            if (sides[round % sides.Length].Session is not null) Time(sides[round % sides.Length]);
            for (var i = 0; i < sides.Length; i++)
            {
                var side = (round + i) % sides.Length;
                if (sides[side].Session is not null) times[side][round] = Time(sides[side]);
            }
        }
        return (times, roundsAlone);
    }

    /// <summary>
    /// A session that reorders <paramref name="x"/> into ONNX Runtime's blocked layout and back, as
    /// its single-node convolution does around the convolution; null where this host's ONNX Runtime
    /// has no blocked layout or will not reorder this many channels (its convolution then reorders nothing).
    /// </summary>
    private InferenceSession? ReorderSession(OrtValue x, long[] shape, RunOptions runOptions)
    {
        InferenceSession? session = null;
        try
        {
            session = open(ReorderModel(shape));
            session.Run(runOptions, ["x"], [x], ["y"]).Dispose();
            return session;
        }
        catch (OnnxRuntimeException)
        {
            session?.Dispose();
            return null;
        }
    }

    /// <summary>
    /// The outcome from each side's rounds (ms): ONNX Runtime's single convolution, the reorders into
    /// and out of its blocked layout (0 where it has none), the kernel with F(2×2) and with F(4×4).
    /// </summary>
    /// <remarks>
    /// A single run of ~0.5 ms varies by half or more on a shared two-core VM (one round's ratio
    /// came out at 0.6 and the next at 11), and what slows a run only adds to its time, so each
    /// side's time is the fastest of its rounds. Not the median: a race runs while the import's
    /// check works in its child process, and where part of the rounds share the cores with it a
    /// median falls on either side of the gap (bench/analysis.md, the forty-seventh pass). The
    /// reorders are timed on their own, a twentieth of the convolution's time or less: taken as the
    /// difference of two convolutions' time and one's, two fastest rounds of ~1 and ~2 ms, they
    /// came out anywhere from 0 to a fifth of it, and the forward's F(2×2) lost 12% of its races at
    /// 64 and 256 channels that it wins (fifty-fourth pass).
    /// </remarks>
    public static Outcome FromRounds(double[] alone, double[] reorders, double[] tile2, double[] tile4)
    {
        var (one, reordering) = (alone.Min(), reorders.Min());
        // ONNX Runtime's convolution in its blocked layout is its single-node run less the reorders.
        return new Outcome(Math.Max(one - reordering, 1e-3), reordering, tile2.Min(), tile4.Min());
    }

    /// <summary>
    /// One padded 3×3 convolution of <paramref name="shape"/>'s input into <paramref name="outputs"/>
    /// channels, its weights constant.
    /// </summary>
    public static ModelProto Model(long[] shape, long outputs, float[] weights, string opType, string domain, AttributeProto attribute) =>
        Model(shape, [shape[0], outputs, shape[2], shape[3]], [outputs, shape[1], 3, 3], weights, opType, domain, attribute);

    /// <summary>One node from input <c>x</c> of <paramref name="input"/>'s shape and constant weights <c>w</c> to output <c>y</c>.</summary>
    public static ModelProto Model(long[] input, long[] output, long[] weightShape, float[] weights, string opType, string domain,
        params AttributeProto[] attributes) => Graph(
        new GraphProto
        {
            Initializer =
            {
                new TensorProto
                {
                    Name = "w", DataType = (int)TensorProto.Types.DataType.Float, Dims = { weightShape },
                    RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(weights.AsSpan())),
                },
            },
            Node = { new NodeProto { OpType = opType, Domain = domain, Input = { "x", "w" }, Output = { "y" }, Attribute = { attributes } } },
        },
        input, output, new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });

    /// <summary>
    /// <paramref name="shape"/>'s input into ONNX Runtime's blocked layout and back (its
    /// <c>com.microsoft.nchwc</c> operators, which its layout transformer puts around a convolution).
    /// </summary>
    public static ModelProto ReorderModel(long[] shape) => Graph(
        new GraphProto
        {
            Node =
            {
                new NodeProto { OpType = "ReorderInput", Domain = BlockedDomain, Input = { "x" }, Output = { "blocked" } },
                new NodeProto { OpType = "ReorderOutput", Domain = BlockedDomain, Input = { "blocked" }, Output = { "y" }, Attribute = { BackwardGraph.Attribute("channels", shape[1]) } },
            },
        },
        shape, shape, new OperatorSetIdProto { Domain = BlockedDomain, Version = 1 });

    private const string BlockedDomain = "com.microsoft.nchwc";

    /// <summary><paramref name="graph"/>'s nodes from input <c>x</c> to output <c>y</c>, as a model.</summary>
    private static ModelProto Graph(GraphProto graph, long[] input, long[] output, OperatorSetIdProto domain)
    {
        TypeProto Float(long[] dims) => new()
        {
            TensorType = new TypeProto.Types.Tensor
            {
                ElemType = (int)TensorProto.Types.DataType.Float,
                Shape = new TensorShapeProto { Dim = { dims.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }) } },
            },
        };
        graph.Name = GraphName;
        graph.Input.Add(new ValueInfoProto { Name = "x", Type = Float(input) });
        graph.Output.Add(new ValueInfoProto { Name = "y", Type = Float(output) });
        return new ModelProto { IrVersion = 8, OpsetImport = { new OperatorSetIdProto { Version = 13 }, domain }, Graph = graph };
    }
}
