using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Contracts;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// Predictions with the engine's Winograd kernel (<see cref="OnnxRuntimeOptions.WinogradPredictions"/>):
/// the model's graph as a map's pass runs its forward (<see cref="ForwardWinograd"/>: the 3×3
/// convolutions where the kernel wins this host's race, F(2×2) tiles at stride 1, each with the residual and
/// Relu after it fused), opened after the import, checked on the probe against the session it
/// replaces, then swapped in.
/// </summary>
public static class WinogradPredictions
{
    /// <summary>
    /// How far the new session's scores may be from ONNX Runtime's on the probe, as a share of
    /// their largest: F(2×2) rounds a few times more than a direct convolution, far less than this.
    /// </summary>
    public const double Tolerance = 1e-4;

    /// <summary>What a build did: how many convolutions predictions run as the kernel (0: ONNX Runtime's session kept), and the probe's largest difference.</summary>
    public readonly record struct Outcome(int Kernels, double Difference);

    /// <summary>
    /// <see cref="Build"/> on another thread, for a model whose maps run on ONNX Runtime's backward
    /// (its parsed graph and value shapes), once that backward is built.
    /// </summary>
    public static Task<Outcome> Start(OnnxModel onnx, OrtGradientEngine engine, Preprocessing preprocessing, string output, OnnxSessionFactory sessions) =>
        Task.Run(() => Build(onnx, engine.Model, engine.Shapes, preprocessing, output, sessions));

    /// <summary>
    /// Builds the session from <paramref name="model"/> (the file <paramref name="onnx"/> runs),
    /// and swaps it in where it takes any convolution and agrees with ONNX Runtime's on the probe.
    /// </summary>
    /// <param name="shapes">The model's value shapes (<see cref="OrtBackprop.Shapes"/>): the image sizes the race is run at, and which residuals are fused.</param>
    /// <param name="race">Whether the kernel takes only the convolutions where it wins this host's race (<see cref="WinogradRace"/>); without, every one it may take.</param>
    /// <exception cref="InvalidOperationException">The new session disagrees on the probe: the model keeps its session.</exception>
    public static Outcome Build(OnnxModel onnx, ModelProto model, IReadOnlyDictionary<string, TensorInfo> shapes, Preprocessing preprocessing, string output,
        OnnxSessionFactory sessions, bool race = true)
    {
        // Only where the probe is a valid input by construction, so that a disagreement is the kernel's.
        // And only where the explainer's graph computes as the served one does (not an integer input
        // it reads as float, nor half precision it reads as float32: see Float32Graph).
        if (!sessions.RunsOnCpu || !NativeOps.Available || onnx.ExecutionProvider != OnnxSessionFactory.Cpu || !ModelProbe.IsValidInput(onnx)
            || onnx.ElementTypes[preprocessing.Input] != TensorElementType.Float || Onnx.Float32Graph.IsFromHalfPrecision(model)) return default;
        model = model.Clone();
        var convolutions = WinogradConvolutions.For(nativeKernels: true, summed: false, race ? new WinogradRace(m => sessions.Create(m).Session) : null);
        ForwardWinograd.Rewrite(model, shapes, convolutions);
        var kernels = model.Graph.Node.Count(n => n.OpType == NativeOps.WinogradConv);
        if (kernels == 0) return default;

        var (session, _) = sessions.Create(model);
        try
        {
            var probe = ModelProbe.Input(onnx, preprocessing);
            var expected = onnx.Run(preprocessing.Input, probe, output).Data;
            // Where the model takes batches, a batch of two as well: each sample's scores are the probe's.
            var batched = onnx.Inputs.First(i => i.Name == preprocessing.Input).Shape[0] < 0;
            var input = batched ? new FloatTensor([.. probe.Data, .. probe.Data], [2, .. probe.Shape[1..]]) : probe;
            var actual = FloatElements.Of(OnnxModel.Run(session, [onnx.Input(preprocessing.Input, input)], [output])[0]);
            var comparison = ModelProbe.Compare(batched ? [.. expected, .. expected] : expected, actual);
            if (!ModelProbe.Agree(comparison, Tolerance))
                throw new InvalidOperationException(
                    $"The Winograd kernel's session disagrees with ONNX Runtime's on the probe (max abs difference {comparison.Difference:G3} at output scale {comparison.Scale:G3}).");
            if (onnx.Replace(session)) return new Outcome(kernels, comparison.Difference);
            session.Dispose(); // the model was let go meanwhile
            return default;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }
}
