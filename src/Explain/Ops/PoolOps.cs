using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Ops;

/// <summary>
/// Pooling. Every pad (explicit, auto_pad, and the extra end pad that ceil_mode implies) is
/// applied explicitly, then pooled without padding; averages divide by an explicitly pooled
/// count, so asymmetric pads, ceil_mode and count_include_pad compose without special cases.
/// </summary>
internal static class PoolOps
{
    [OnnxOp("MaxPool")]
    private static OpKernel MaxPool(OpContext node)
    {
        if (node.Node.Output.Count > 1 && node.Node.Output[1].Length > 0) throw node.Unsupported("the Indices output");
        if (node.Attributes.Int("storage_order", 0) != 0) throw node.Unsupported("storage_order = 1");
        var window = Window.From(node);
        return (x, _) =>
        {
            var (begin, end) = window.Pads(x[0]!.shape[2..]);
            var padded = F.pad(x[0]!, Padding.TorchOrder(begin, end), value: double.NegativeInfinity);
            return [Pool(padded, window, max: true)];
        };
    }

    /// <summary>
    /// Each output's gradient goes to the input cell its maximum came from, summed where windows
    /// overlap. In 2-D with the engine's own kernels (<see cref="NativeOps"/>): MaxPoolGrad over the
    /// recorded input, one pass. Otherwise the flat indices ONNX Runtime's forward records as
    /// MaxPool's second output, scattered (a scalar kernel in the forward and a scatter: 6.9 ms
    /// against 2.0 with MaxPoolGrad on ResNet-18 on a Zen 3 host, bench/analysis.md).
    /// </summary>
    [OnnxGradient("MaxPool")]
    private static GradientRule? MaxPoolGradient(OpContext node)
    {
        if (node.Opset < 8) return null;
        var window = Window.From(node);
        return new((graph, n) =>
        {
            var input = n.InputShapes[0]!;
            var gradient = n.OutputGradients[0]!;
            if (graph.NativeKernels && input.Length == 4)
            {
                var (begin, end) = window.Pads(input[2..]);
                return [graph.NativeNode(NativeOps.MaxPoolGrad, [graph.Recorded(n.Inputs[0]), gradient],
                    BackwardGraph.Attribute("kernel_shape", window.Kernel), BackwardGraph.Attribute("strides", window.Strides),
                    BackwardGraph.Attribute("pads", [.. begin, .. end]), BackwardGraph.Attribute("dilations", window.Dilations))];
            }
            var shape = input[0] >= 0 ? graph.Ints(input)
                : graph.Node("Concat", [graph.Node("Shape", [gradient], BackwardGraph.Attribute("end", 1)), graph.Ints(input[1..])], BackwardGraph.Attribute("axis", 0));
            var zeros = graph.Node("ConstantOfShape", [graph.Node("ReduceProd", [shape], BackwardGraph.Attribute("keepdims", 1))]);
            var flat = graph.Ints(-1);
            var scattered = graph.Node("ScatterElements",
                [zeros, graph.Node("Reshape", [graph.RecordedIndices(n.Outputs[0]), flat]), graph.Node("Reshape", [gradient, flat])],
                BackwardGraph.Attribute("axis", 0), BackwardGraph.Attribute("reduction", "add"));
            return [graph.Node("Reshape", [scattered, shape])];
        });
    }

    [OnnxOp("AveragePool")]
    private static OpKernel AveragePool(OpContext node)
    {
        var window = Window.From(node);
        if (window.Dilations.Any(d => d != 1)) throw node.Unsupported("dilated AveragePool");
        var includePad = node.Attributes.Int("count_include_pad", 0) != 0;
        return (x, _) =>
        {
            var input = x[0]!;
            var spatial = input.shape[2..];
            var (begin, end) = window.Pads(spatial);
            var sums = Pool(F.pad(input, Padding.TorchOrder(begin, end)), window, max: false);
            return [sums / Counts(window, spatial, includePad)];
        };
    }

    /// <summary>
    /// Each input cell gets the gradient of every window it is in, over that window's count: a
    /// depthwise transposed convolution with a kernel of ones of the gradient over the counts.
    /// </summary>
    [OnnxGradient("AveragePool")]
    private static GradientRule? AveragePoolGradient(OpContext node)
    {
        var window = Window.From(node);
        if (window.Dilations.Any(d => d != 1)) return null;
        var includePad = node.Attributes.Int("count_include_pad", 0) != 0;
        return new((graph, n) =>
        {
            var (input, output) = (n.InputShapes[0]!, n.OutputShapes[0]!);
            var spatial = input[2..];
            var (begin, end) = window.Pads(spatial);
            var shares = graph.Node("Div", [n.OutputGradients[0]!, graph.Constant(Counts(window, spatial, includePad))]);
            var kernel = ones([input[1], 1, .. window.Kernel]);
            var outputPadding = Enumerable.Range(0, spatial.Length)
                .Select(i => spatial[i] - ((output[2 + i] - 1) * window.Strides[i] - begin[i] - end[i] + window.Kernel[i])).ToArray();
            return [graph.Node("ConvTranspose", [shares, graph.Constant(kernel)], BackwardGraph.Attribute("group", input[1]),
                BackwardGraph.Attribute("kernel_shape", window.Kernel), BackwardGraph.Attribute("strides", window.Strides),
                BackwardGraph.Attribute("pads", [.. begin, .. end]), BackwardGraph.Attribute("output_padding", outputPadding))];
        });
    }

    /// <summary>
    /// How many values each window averages ([1, 1, out…]): the input's cells, plus the explicit
    /// pads when they count; never the extra end pad of ceil_mode.
    /// </summary>
    private static Tensor Counts(Window window, long[] spatial, bool includePad)
    {
        var (begin, end) = window.Pads(spatial);
        var mask = ones([1, 1, .. spatial]);
        if (includePad)
        {
            var (explicitBegin, explicitEnd) = window.ExplicitPads(spatial);
            mask = F.pad(mask, Padding.TorchOrder(explicitBegin, explicitEnd), value: 1);
            mask = F.pad(mask, Padding.TorchOrder(new long[spatial.Length], end.Zip(explicitEnd, (e, x) => e - x).ToArray()));
        }
        else mask = F.pad(mask, Padding.TorchOrder(begin, end));
        return Pool(mask, window, max: false);
    }

    /// <summary>Every cell gets its channel's gradient over the cell count (a broadcast product).</summary>
    [OnnxGradient("GlobalAveragePool")]
    private static GradientRule GlobalAveragePoolGradient(OpContext node) => new((graph, n) =>
    {
        var spatial = n.InputShapes[0]![2..];
        var share = Scalars.With(1.0 / spatial.Aggregate(1L, (p, d) => p * d), value => full([1, 1, .. spatial], value, ScalarType.Float32));
        return [graph.Node("Mul", [n.OutputGradients[0]!, graph.Constant(share)])];
    });

    [OnnxOp("GlobalAveragePool")]
    private static OpKernel GlobalAveragePool(OpContext node) => (x, _) =>
        [x[0]!.mean(Enumerable.Range(2, (int)x[0]!.dim() - 2).Select(d => (long)d).ToArray(), keepdim: true)];

    [OnnxOp("GlobalMaxPool")]
    private static OpKernel GlobalMaxPool(OpContext node) => (x, _) =>
        [x[0]!.amax(Enumerable.Range(2, (int)x[0]!.dim() - 2).Select(d => (long)d).ToArray(), keepdim: true)];

    [OnnxGradient("GlobalMaxPool")]
    private static GradientRule GlobalMaxPoolGradient(OpContext node) => new((graph, n) =>
        [ExtremeGradient(graph, n, Enumerable.Range(2, n.InputShapes[0]!.Length - 2).Select(d => (long)d).ToArray(), keep: true)]);

    /// <summary>
    /// A max (min) reduction's input gradient: G on the cells equal to the recorded result, shared
    /// equally where several tie (libtorch's amax and amin, the mirror's kernels), 0 elsewhere.
    /// </summary>
    internal static string ExtremeGradient(BackwardGraph graph, GradientNode n, long[] reduced, bool keep)
    {
        string Kept(string value) => keep ? value : graph.Node("Unsqueeze", [value, graph.Ints(reduced)]);
        var hit = graph.Node("Where", [graph.Node("Equal", [graph.Recorded(n.Inputs[0]), Kept(graph.Recorded(n.Outputs[0]))]), graph.Scalar(1), graph.Scalar(0)]);
        var ties = graph.Node("ReduceSum", [hit, graph.Ints(reduced)], BackwardGraph.Attribute("keepdims", 1));
        return graph.Node("Mul", [hit, graph.Node("Div", [Kept(n.OutputGradients[0]!), ties])]);
    }

    /// <summary>Max or sum over windows of an already padded input (1-D runs as 2-D).</summary>
    private static Tensor Pool(Tensor x, Window w, bool max)
    {
        var k = w.Kernel;
        var area = k.Aggregate(1L, (a, b) => a * b);
        var zeros = new long[k.Length];
        return k.Length switch
        {
            1 => Pool(x.unsqueeze(2), w with { Kernel = [1, .. k], Strides = [1, .. w.Strides], Dilations = [1, .. w.Dilations] }, max).squeeze(2),
            2 => max ? F.max_pool2d(x, k, w.Strides, zeros, w.Dilations) : F.avg_pool2d(x, k, w.Strides, zeros).Times(area),
            3 => max ? F.max_pool3d(x, k, w.Strides, zeros, w.Dilations) : F.avg_pool3d(x, k, w.Strides, zeros).Times(area),
            _ => throw new UnsupportedOperatorException("Pool", 0, $"{k.Length}-D pooling"),
        };
    }

    private sealed record Window(long[] Kernel, long[] Strides, long[] Dilations, long[] PadList, string AutoPad, bool CeilMode)
    {
        public static Window From(OpContext node)
        {
            var a = node.Attributes;
            var kernel = a.Ints("kernel_shape") ?? throw node.Unsupported("a missing kernel_shape");
            var n = kernel.Length;
            return new Window(kernel,
                a.Ints("strides") ?? Enumerable.Repeat(1L, n).ToArray(),
                a.Ints("dilations") ?? Enumerable.Repeat(1L, n).ToArray(),
                a.Ints("pads") ?? new long[2 * n],
                a.String("auto_pad", "NOTSET"),
                a.Int("ceil_mode", 0) != 0);
        }

        public (long[] Begin, long[] End) ExplicitPads(long[] input) =>
            Padding.Resolve(AutoPad, PadList, input, Kernel, Strides, Dilations);

        /// <summary>
        /// Explicit pads, with the end pad grown so that ceil_mode's last window is complete. As in
        /// ONNX Runtime and PyTorch, a last window that would start in the end padding is dropped.
        /// </summary>
        public (long[] Begin, long[] End) Pads(long[] input)
        {
            var (begin, end) = ExplicitPads(input);
            for (var i = 0; i < input.Length; i++)
            {
                var extent = (Kernel[i] - 1) * Dilations[i] + 1;
                var span = input[i] + begin[i] + end[i];
                var steps = span - extent;
                var outputs = (CeilMode ? (steps + Strides[i] - 1) / Strides[i] : steps / Strides[i]) + 1;
                if (CeilMode && (outputs - 1) * Strides[i] >= input[i] + begin[i]) outputs--;
                end[i] += Math.Max(0, (outputs - 1) * Strides[i] + extent - span);
            }
            return (begin, end);
        }
    }
}
