using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Explain.Ops;

/// <summary>
/// The input gradient of a strided 2-D convolution (no groups) as ONNX Runtime's ConvTranspose
/// computes it: the product of the kernel, transposed, with the output's gradient (a column of
/// kh·kw cells per input channel for every output cell), then the columns added into the image
/// (<see cref="NativeOps.Col2Im"/>). The engine's own scatter adds contiguous runs as vectors where
/// ConvTranspose adds one cell at a time: ResNet-18's 7×7/2 stem 1.81 → 1.27 ms, its 3×3/2 layers
/// 0.65 → 0.55 ms or the same (a Zen 5 host, bench/analysis.md). A gradient that is mostly zeros
/// (<see cref="BackwardGraph.Sparse"/>: the stem's, from its max pool) is scattered cell by non-zero
/// cell instead (<see cref="NativeOps.SparseConvTranspose"/>), where the product multiplies every cell.
/// A stride-2 3×3 one with one cell of padding runs as the Winograd kernel's transposed form where
/// <see cref="WinogradConvolutions.TakesStrided"/> (its race on this host) gives it.
/// </summary>
internal static class ColumnGradient
{
    /// <summary>Whether this form is written for a strided convolution with this kernel: a 1×1 one's ConvTranspose is as fast.</summary>
    public static bool Applies(BackwardGraph graph, int spatial, long group, long[] kernel) => graph.NativeKernels && spatial == 2 && group == 1 && kernel[0] * kernel[1] > 1;

    /// <summary>
    /// Whether a depthwise convolution's (one input and one output channel a group, <paramref name="shape"/>
    /// its kernel's [C, 1, kh, kw]) is written as <see cref="NativeOps.DepthwiseCol2Im"/>: its
    /// columns are the kernel's taps times the gradient, scaled as they are added. ONNX Runtime's
    /// ConvTranspose with groups runs a product and a scalar scatter per channel: MobileNetV2's
    /// strided depthwise layers 0.3–1.9 ms each (bench/analysis.md).
    /// </summary>
    public static bool AppliesDepthwise(BackwardGraph graph, int spatial, long group, long[] shape) =>
        graph.NativeKernels && spatial == 2 && group > 1 && shape[0] == group && shape[1] == 1 && shape[2] * shape[3] > 1;

    /// <summary>∂input of <c>Conv(x, w)</c>, where <see cref="Applies"/>, from the output's gradient.</summary>
    /// <param name="weight">The kernel's value in the graph, [C_out, C_in, kh, kw] (<paramref name="shape"/>).</param>
    /// <param name="input">The convolution's input shape (−1: the batch dimension).</param>
    /// <param name="output">Its output's, the gradient's.</param>
    public static string InputGradient(BackwardGraph graph, string gradient, string weight, long[] shape, long[] input, long[] output,
        long[] strides, long[] dilations, long[] begin, long[] end)
    {
        if (graph.Sparse(gradient) && FloatTensor.ElementCount(shape) <= NativeOps.MaxSparseWeights)
            return graph.NativeNode(NativeOps.SparseConvTranspose, [gradient, weight], Window(shape, input, strides, dilations, begin, end));
        // A stride-2 3×3 convolution with one cell of padding: the Winograd kernel's transposed form,
        // on the kernel itself, where it wins this host's race (25 products a tile for the product's 36).
        if (shape is [_, _, 3, 3] && strides is [2, 2] && dilations is [1, 1] && begin is [1, 1] && end is [1, 1] && input[2] > 0 && input[3] > 0
            && graph.Winograd.TakesStrided(shape[0], shape[1], input[2], input[3], forward: false))
            return graph.NativeNode(NativeOps.WinogradConv, [gradient, weight], BackwardGraph.Attribute("stride", 2), BackwardGraph.Attribute("transposed", 1),
                BackwardGraph.Attribute("output_padding", [input[2] - (2 * output[2] - 1), input[3] - (2 * output[3] - 1)]));
        // Wᵀ as [C_in·kh·kw, C_out], row (c, a, b) tap (a, b) of input channel c (constant: folded when the session loads).
        var transposed = graph.Node("Reshape", [graph.Node("Transpose", [weight], BackwardGraph.Attribute("perm", [1, 2, 3, 0])), graph.Ints(-1, shape[0])]);
        var cells = graph.Reshape(gradient, output, [output[0], output[1], output[2] * output[3]]);
        var columns = graph.Node("MatMul", [transposed, cells]);
        return graph.NativeNode(NativeOps.Col2Im, [columns], Window(shape, input, strides, dilations, begin, end));
    }

    /// <summary>∂input of a depthwise <c>Conv(x, w)</c>, where <see cref="AppliesDepthwise"/>, from the output's gradient.</summary>
    public static string DepthwiseInputGradient(BackwardGraph graph, string gradient, string weight, long[] shape, long[] input,
        long[] strides, long[] dilations, long[] begin, long[] end) =>
        graph.NativeNode(NativeOps.DepthwiseCol2Im, [gradient, weight], Window(shape, input, strides, dilations, begin, end));

    /// <summary>The scatter's attributes: the image's size and the blocks' (the kernel's) shape, strides, pads and dilations.</summary>
    private static AttributeProto[] Window(long[] shape, long[] input, long[] strides, long[] dilations, long[] begin, long[] end) =>
    [
        BackwardGraph.Attribute("image_shape", input[2..]), BackwardGraph.Attribute("block_shape", shape[2..]),
        BackwardGraph.Attribute("strides", strides), BackwardGraph.Attribute("pads", [.. begin, .. end]),
        BackwardGraph.Attribute("dilations", dilations),
    ];
}
