using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Ops;

/// <summary>Pad: constant (negative pads crop), reflect and edge.</summary>
internal static class PadOps
{
    [OnnxOp("Pad", 2)]
    private static OpKernel PadAttributes(OpContext node)
    {
        var pads = node.Attributes.Ints("pads") ?? throw node.Unsupported("missing pads");
        var value = node.Attributes.Float("value", 0f);
        var mode = Mode(node);
        return (x, _) => [Pad(x[0]!, pads, null, value, mode)];
    }

    [OnnxOp("Pad", 11)]
    private static OpKernel PadInputs(OpContext node)
    {
        var mode = Mode(node);
        return (x, _) =>
        {
            var value = x.Length > 2 && x[2] is { } v && v.NumberOfElements > 0 ? OpHelpers.Doubles(v)[0] : 0;
            var axes = x.Length > 3 && x[3] is { } a ? OpHelpers.Longs(a) : null;
            return [Pad(x[0]!, OpHelpers.Longs(x[1]!), axes, value, mode)];
        };
    }

    /// <summary>
    /// Constant padding with constant pads: the gradient is padded back by the negated pads (ONNX
    /// Pad crops where pads are negative), which drops the padded cells and restores cropped ones as 0.
    /// </summary>
    [OnnxGradient("Pad")]
    private static GradientRule? PadGradient(OpContext node)
    {
        if (node.Attributes.String("mode", "constant") != "constant") return null;
        return new((graph, n) =>
        {
            // Pads and axes: constants, or computed from shapes alone (Swin pads its windows so).
            var pads = node.Opset < 11 ? node.Attributes.Ints("pads") : n.Constants[1] is { } p ? OpHelpers.Longs(p) : null;
            var axes = node.Opset >= 11 && n.Constants.Length > 3 && n.Constants[3] is { } a ? OpHelpers.Longs(a) : null;
            if (pads is null || (node.Opset >= 11 && node.HasInput(3) && axes is null))
                throw new NotSupportedException("a Pad with computed pads has no backward rule");
            var rank = n.InputShapes[0]!.Length;
            var axisList = (axes ?? Enumerable.Range(0, rank).Select(i => (long)i).ToArray()).Select(i => OpHelpers.Axis(i, rank)).ToArray();
            var back = new long[2 * rank];
            for (var i = 0; i < axisList.Length; i++)
            {
                back[axisList[i]] = -pads[i];
                back[rank + axisList[i]] = -pads[axisList.Length + i];
            }
            return [graph.Node("Pad", [n.OutputGradients[0]!, graph.Ints(back)]), null, null, null];
        });
    }

    private static PaddingModes Mode(OpContext node) => node.Attributes.String("mode", "constant") switch
    {
        "constant" => PaddingModes.Constant,
        "reflect" => PaddingModes.Reflect,
        "edge" => PaddingModes.Replicate,
        var other => throw node.Unsupported($"mode '{other}'"),
    };

    /// <summary>ONNX pads are [begin per axis…, end per axis…] over <paramref name="axes"/> (default all).</summary>
    private static Tensor Pad(Tensor input, long[] pads, long[]? axes, double value, PaddingModes mode)
    {
        var rank = (int)input.dim();
        var axisList = (axes ?? Enumerable.Range(0, rank).Select(a => (long)a).ToArray()).Select(a => OpHelpers.Axis(a, rank)).ToArray();
        var begin = new long[rank];
        var end = new long[rank];
        for (var i = 0; i < axisList.Length; i++)
        {
            begin[axisList[i]] = pads[i];
            end[axisList[i]] = pads[axisList.Length + i];
        }
        // torch pads from the last axis backwards; leading axes without padding are left out.
        var first = Enumerable.Range(0, rank).FirstOrDefault(a => begin[a] != 0 || end[a] != 0, rank);
        if (first == rank) return input;
        if (mode != PaddingModes.Constant && first < rank - 3)
            throw new UnsupportedOperatorException("Pad", 0, "reflect/edge padding of more than the last three axes");
        return F.pad(input, Padding.TorchOrder(begin[first..], end[first..]), mode, value);
    }
}
