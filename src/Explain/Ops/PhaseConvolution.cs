using SaliencyService.Explain.Mirror;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>
/// The input gradient of a strided 2-D convolution as one stride-1 convolution per output phase,
/// the s² phases stacked as channels and interleaved by <c>DepthToSpace</c>. Each input cell
/// (s·i + p) takes the output gradients whose windows reach it through the taps a ≡ p + pad (mod s)
/// only; so a phase is a plain convolution with that sub-kernel, which ONNX Runtime runs with its
/// blocked kernels, where its <c>ConvTranspose</c> is a small matrix product and a scatter of the
/// column buffer. That pays where the phases' kernels waste few taps and the gradient has few
/// channels: an image model's stem (ResNet's 7×7/2 into 3 channels: 5.6 → 4.3 ms on a Zen 3 host,
/// bench/analysis.md). Dense 3×3/2 layers would do 1.8× the work and keep <c>ConvTranspose</c>.
/// </summary>
internal static class PhaseConvolution
{
    /// <summary>Most taps the stacked phase kernels may hold, relative to the kernel's own.</summary>
    private const double MaxWork = 1.5;

    /// <summary>Most channels of the stacked phases (one or two of ONNX Runtime's blocks).</summary>
    private const long MaxPhaseChannels = 16;

    /// <summary>
    /// ∂input of <c>Conv(x, w)</c> with strides (s, s) and begin pads <paramref name="begin"/>
    /// (no groups, no dilation), from the output's gradient; null where the phases do not pay.
    /// </summary>
    public static string? InputGradient(BackwardGraph graph, string gradient, Tensor weight, long[] input, long[] output, long stride, long[] begin)
    {
        var (outputs, inputs, kernel) = (weight.shape[0], weight.shape[1], weight.shape[2..]);
        var phases = stride * stride;
        if (inputs * phases > MaxPhaseChannels) return null;
        // Per axis, the output offsets m (cell s·i + p reads the gradient at i − m) some phase
        // needs: those with 0 ≤ s·m + p + pad < k. The stacked kernel spans all of them.
        var reach = new long[2];
        var span = new long[2];
        for (var d = 0; d < 2; d++)
        {
            var low = Enumerable.Range(0, (int)stride).Min(p => CeilDiv(-(p + begin[d]), stride));
            var high = Enumerable.Range(0, (int)stride).Max(p => FloorDiv(kernel[d] - 1 - p - begin[d], stride));
            if (high < 0 || high < low) return null;
            (reach[d], span[d]) = (high, high - low + 1);
        }
        if (phases * span[0] * span[1] > MaxWork * kernel[0] * kernel[1]) return null;

        using var values = weight.to_type(ScalarType.Float32).contiguous();
        var w = values.data<float>().ToArray();
        var stacked = new float[inputs * phases * outputs * span[0] * span[1]];
        for (var c = 0; c < inputs; c++)
        for (var ph = 0; ph < stride; ph++)
        for (var pw = 0; pw < stride; pw++)
        for (var o = 0; o < outputs; o++)
        for (var u = 0; u < span[0]; u++)
        for (var v = 0; v < span[1]; v++)
        {
            var (a, b) = (stride * (reach[0] - u) + ph + begin[0], stride * (reach[1] - v) + pw + begin[1]);
            if (a < 0 || a >= kernel[0] || b < 0 || b >= kernel[1]) continue;
            var channel = (c * stride + ph) * stride + pw; // DepthToSpace's CRD order
            stacked[((channel * outputs + o) * span[0] + u) * span[1] + v] = w[((o * inputs + c) * kernel[0] + a) * kernel[1] + b];
        }
        // Each phase covers ⌈size / s⌉ cells; the interleaved result is cropped to the input's size.
        var endPads = Enumerable.Range(0, 2).Select(d => Math.Max(0, CeilDiv(input[2 + d], stride) - output[2 + d] - reach[d] + span[d] - 1)).ToArray();
        var phased = graph.Node("Conv", [gradient, graph.Constant(tensor(stacked, [inputs * phases, outputs, span[0], span[1]]))],
            BackwardGraph.Attribute("kernel_shape", span), BackwardGraph.Attribute("pads", [reach[0], reach[1], endPads[0], endPads[1]]));
        var interleaved = graph.Node("DepthToSpace", [phased], BackwardGraph.Attribute("blocksize", stride), BackwardGraph.Attribute("mode", "CRD"));
        return graph.Node("Slice", [interleaved, graph.Ints(0, 0), graph.Ints(input[2], input[3]), graph.Ints(2, 3)]);
    }

    private static long FloorDiv(long a, long b) => (long)Math.Floor((double)a / b);

    private static long CeilDiv(long a, long b) => (long)Math.Ceiling((double)a / b);
}
