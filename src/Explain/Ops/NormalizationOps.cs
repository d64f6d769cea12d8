using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Ops;

/// <summary>Inference-time normalisations.</summary>
internal static class NormalizationOps
{
    /// <summary>
    /// y = x·a + b with a = scale/√(var+ε), b = B − mean·a, folded once when the statistics are
    /// constant. Opsets 7–8 may set spatial = 0: statistics per activation instead of per channel.
    /// </summary>
    /// <summary>With constant statistics, inference BatchNorm is x·a + b per channel: ∂x = G·a.</summary>
    [OnnxGradient("BatchNormalization")]
    private static GradientRule? BatchNormalizationGradient(OpContext node)
    {
        if (!Enumerable.Range(1, 4).All(i => node.Constant(i) is not null)) return null;
        var epsilon = node.Attributes.Float("epsilon", 1e-5f);
        var spatial = node.Opset >= 9 || node.Attributes.Int("spatial", 1) != 0;
        return new((graph, n) =>
        {
            var a = n.Constants[1]! / n.Constants[4]!.Plus(epsilon).sqrt();
            var rank = n.InputShapes[0]!.Length;
            var shaped = spatial ? a.reshape([1, -1, .. Enumerable.Repeat(1L, rank - 2)]) : a.unsqueeze(0);
            return [graph.Node("Mul", [n.OutputGradients[0]!, graph.Constant(shaped)]), null, null, null, null];
        });
    }

    [OnnxOp("BatchNormalization", 7)]
    private static OpKernel BatchNormalization(OpContext node)
    {
        if (node.Attributes.Int("training_mode", 0) != 0) throw node.Unsupported("training_mode = 1");
        if (node.Node.Output.Skip(1).Any(o => o.Length > 0)) throw node.Unsupported("the training statistics outputs");
        var epsilon = node.Attributes.Float("epsilon", 1e-5f);
        var spatial = node.Opset >= 9 || node.Attributes.Int("spatial", 1) != 0;

        (Tensor A, Tensor B) Fold(Tensor scale, Tensor bias, Tensor mean, Tensor variance)
        {
            var a = scale / variance.Plus(epsilon).sqrt();
            return (a, bias - mean * a);
        }

        Tensor Shaped(Tensor factor, Tensor x) => spatial
            ? factor.reshape([1, -1, .. Enumerable.Repeat(1L, (int)x.dim() - 2)])
            : factor.unsqueeze(0);

        if (Enumerable.Range(1, 4).All(i => node.Constant(i) is not null))
        {
            var (a, b) = Fold(node.Constant(1)!, node.Constant(2)!, node.Constant(3)!, node.Constant(4)!);
            var (ownedA, ownedB) = (node.Own(a), node.Own(b));
            return (x, _) => [(x[0]! * Shaped(ownedA, x[0]!)).Plus(Shaped(ownedB, x[0]!))];
        }
        return (x, _) =>
        {
            var (a, b) = Fold(x[1]!, x[2]!, x[3]!, x[4]!);
            return [(x[0]! * Shaped(a, x[0]!)).Plus(Shaped(b, x[0]!))];
        };
    }

    /// <summary>Per sample and channel over the spatial axes.</summary>
    [OnnxOp("InstanceNormalization")]
    private static OpKernel InstanceNormalization(OpContext node)
    {
        var epsilon = node.Attributes.Float("epsilon", 1e-5f);
        return (x, _) =>
        {
            var input = x[0]!;
            var axes = Enumerable.Range(2, (int)input.dim() - 2).Select(d => (long)d).ToArray();
            var centred = input - input.mean(axes, keepdim: true);
            var variance = (centred * centred).mean(axes, keepdim: true);
            var shape = new long[] { 1, -1 }.Concat(Enumerable.Repeat(1L, (int)input.dim() - 2)).ToArray();
            return [(centred / variance.Plus(epsilon).sqrt() * x[1]!.reshape(shape)).Plus(x[2]!.reshape(shape))];
        };
    }

    [OnnxOp("LayerNormalization", 17)]
    private static OpKernel LayerNormalization(OpContext node)
    {
        if (node.Node.Output.Skip(1).Any(o => o.Length > 0)) throw node.Unsupported("the Mean and InvStdDev outputs");
        var axis = node.Attributes.Int("axis", -1);
        var epsilon = node.Attributes.Float("epsilon", 1e-5f);
        return (x, _) =>
        {
            var input = x[0]!;
            var first = OpHelpers.Axis(axis, input.dim());
            var axes = Enumerable.Range((int)first, (int)(input.dim() - first)).Select(d => (long)d).ToArray();
            var centred = input - input.mean(axes, keepdim: true);
            var variance = (centred * centred).mean(axes, keepdim: true);
            var y = centred / variance.Plus(epsilon).sqrt() * x[1]!;
            return [x.Length > 2 && x[2] is { } bias ? y.Plus(bias) : y];
        };
    }

    /// <summary>With a constant scale γ, over the normalised axes (<see cref="StandardisedGradient"/>).</summary>
    [OnnxGradient("LayerNormalization")]
    private static GradientRule? LayerNormalizationGradient(OpContext node)
    {
        if (node.Constant(1) is null) return null;
        var axis = node.Attributes.Int("axis", -1);
        var epsilon = node.Attributes.Float("epsilon", 1e-5f);
        return new((graph, n) =>
        {
            var rank = n.InputShapes[0]!.Length;
            var first = (int)OpHelpers.Axis(axis, rank);
            return [StandardisedGradient(graph, n, Enumerable.Range(first, rank - first).ToArray(), graph.ConstantInput(n, 1), epsilon), null, null];
        });
    }

    /// <summary>LayerNormalization's over each sample's channel's cells, with a constant scale per channel.</summary>
    [OnnxGradient("InstanceNormalization")]
    private static GradientRule? InstanceNormalizationGradient(OpContext node)
    {
        if (node.Constant(1) is not { } scale) return null;
        var epsilon = node.Attributes.Float("epsilon", 1e-5f);
        return new((graph, n) =>
        {
            var rank = n.InputShapes[0]!.Length;
            using var shaped = scale.reshape([-1, .. Enumerable.Repeat(1L, rank - 2)]);
            var perChannel = graph.Constant(shaped);
            return [StandardisedGradient(graph, n, Enumerable.Range(2, rank - 2).ToArray(), perChannel, epsilon), null, null];
        });
    }

    /// <summary>
    /// The input gradient of (x − mean) / σ · γ over <paramref name="axes"/>:
    /// (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / σ, ĝ = G·γ, x̂ and σ recomputed from the recorded input.
    /// </summary>
    private static string StandardisedGradient(BackwardGraph graph, GradientNode n, int[] axes, string scale, float epsilon)
    {
        var count = axes.Aggregate(1L, (product, d) => product * n.InputShapes[0]![d]);
        if (count <= 0) throw new NotSupportedException("it normalises over the batch dimension");
        var reduced = graph.Ints(axes.Select(d => (long)d).ToArray());
        // A sum and a scale, not ReduceMean, whose axes move from an attribute to an input at opset 18.
        string Mean(string value) => graph.Node("Mul", [graph.Node("ReduceSum", [value, reduced], BackwardGraph.Attribute("keepdims", 1)), graph.Scalar(1f / count)]);
        var x = graph.Recorded(n.Inputs[0]);
        var centred = graph.Node("Sub", [x, Mean(x)]);
        var inverse = graph.Node("Reciprocal", [graph.Node("Sqrt", [graph.Node("Add", [Mean(graph.Node("Mul", [centred, centred])), graph.Scalar(epsilon)])])]);
        var normalised = graph.Node("Mul", [centred, inverse]);
        var scaled = graph.Node("Mul", [n.OutputGradients[0]!, scale]);
        var inner = graph.Node("Sub", [graph.Node("Sub", [scaled, Mean(scaled)]), graph.Node("Mul", [normalised, Mean(graph.Node("Mul", [scaled, normalised]))])]);
        return graph.Node("Mul", [inner, inverse]);
    }

    /// <summary>
    /// x / (bias + alpha/size · Σ x²)^beta over the channel window
    /// [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉], as ONNX defines it (torch centres even windows differently).
    /// </summary>
    [OnnxOp("LRN")]
    private static OpKernel Lrn(OpContext node)
    {
        var size = node.Attributes.Int("size", 0);
        if (size < 1) throw node.Unsupported("a missing or non-positive size");
        var alpha = node.Attributes.Float("alpha", 1e-4f);
        var beta = node.Attributes.Float("beta", 0.75f);
        var bias = node.Attributes.Float("bias", 1f);
        return (x, _) =>
        {
            var input = x[0]!;
            var squares = (input * input).reshape(input.shape[0], 1, input.shape[1], -1, 1);
            var padded = F.pad(squares, [0, 0, 0, 0, (size - 1) / 2, size / 2]);
            var sums = F.avg_pool3d(padded, [size, 1, 1], [1, 1, 1]).Times(size);
            var divisor = Scalars.With(beta, power => sums.reshape(input.shape).Times(alpha / size).Plus(bias).pow(power));
            return [input / divisor];
        };
    }

    /// <summary>
    /// With s = bias + α/size · Σ_window x² and y = x · s^−β:
    /// ∂x = G · s^−β − 2αβ/size · x · Σ_{windows holding the channel} G·x·s^(−β−1). Each windowed
    /// channel sum is a 1×1 convolution with a band of ones, symmetric at the odd sizes ONNX Runtime
    /// runs, so the windows holding a channel are the channel's own window.
    /// </summary>
    [OnnxGradient("LRN")]
    private static GradientRule LrnGradient(OpContext node)
    {
        var size = node.Attributes.Int("size", 0);
        var alpha = node.Attributes.Float("alpha", 1e-4f);
        var beta = node.Attributes.Float("beta", 0.75f);
        var bias = node.Attributes.Float("bias", 1f);
        return new((graph, n) =>
        {
            var shape = n.InputShapes[0]!;
            var channels = shape[1];
            if (channels < 0) throw new NotSupportedException("its channels follow the batch size");
            if (size % 2 == 0) throw new NotSupportedException("an even size (ONNX Runtime runs odd ones only)");
            var band = BackwardGraph.NewMatrix(channels, channels, "its channel band");
            for (var c = 0; c < channels; c++)
            for (var k = Math.Max(0, c - size / 2); k <= Math.Min(channels - 1, c + size / 2); k++)
                band[c * channels + k] = 1;
            using var weights = tensor(band, [channels, channels, .. Enumerable.Repeat(1L, shape.Length - 2)]);
            var window = graph.Constant(weights);
            string WindowSum(string value) => graph.Node("Conv", [value, window]);
            var x = graph.Recorded(n.Inputs[0]);
            var s = graph.Node("Add", [graph.Node("Mul", [WindowSum(graph.Node("Mul", [x, x])), graph.Scalar(alpha / size)]), graph.Scalar(bias)]);
            var scale = graph.Node("Pow", [s, graph.Scalar(-beta)]);
            var g = n.OutputGradients[0]!;
            var direct = graph.Node("Mul", [g, scale]);
            var through = graph.Node("Div", [graph.Node("Mul", [direct, x]), s]);
            var spread = graph.Node("Mul", [graph.Node("Mul", [WindowSum(through), x]), graph.Scalar(2 * alpha * beta / size)]);
            return [graph.Node("Sub", [direct, spread])];
        });
    }
}
