using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Ops;

/// <summary>Conv and ConvTranspose in 1, 2 or 3 spatial dimensions.</summary>
internal static class ConvOps
{
    /// <summary>Groups, dilations, asymmetric pads (padded explicitly) and every auto_pad mode.</summary>
    [OnnxOp("Conv")]
    private static OpKernel Conv(OpContext node)
    {
        var (spatial, strides, dilations, pads, autoPad, group) = ConvAttributes.From(node);
        return (x, _) =>
        {
            var input = x[0]!;
            var w = x[1]!;
            var kernel = w.shape[2..];
            var (begin, end) = Padding.Resolve(autoPad, pads, input.shape[2..], kernel, strides, dilations);
            if (!begin.SequenceEqual(end))
            {
                input = F.pad(input, Padding.TorchOrder(begin, end));
                begin = new long[spatial];
            }
            var bias = x.Length > 2 ? x[2] : null;
            return [spatial switch
            {
                // 1-D runs as 2-D over a height of one.
                1 => F.conv2d(input.unsqueeze(2), w.unsqueeze(2), bias, [1, .. strides], [0, .. begin], [1, .. dilations], group).squeeze(2),
                2 => F.conv2d(input, w, bias, strides, begin, dilations, group),
                _ => F.conv3d(input, w, bias, strides, begin, dilations, group),
            }];
        };
    }

    /// <summary>
    /// With constant weights, ∂input is the transposed convolution of the output's gradient. At
    /// stride 1 it is written as a plain convolution with the kernel flipped and its channel axes
    /// swapped (ONNX Runtime's fastest kernels); a strided 2-D one (or one padded past its kernel)
    /// as the engine's own kernels write it (<see cref="ColumnGradient"/>: a product and the scatter
    /// of its columns, or a stride-2 3×3 one as the Winograd kernel's transposed form);
    /// otherwise as ConvTranspose, whose output_padding restores the rows the stride dropped.
    /// </summary>
    [OnnxGradient("Conv")]
    private static GradientRule? ConvGradient(OpContext node)
    {
        if (node.Constant(1) is null) return null;
        var (spatial, strides, dilations, pads, autoPad, group) = ConvAttributes.From(node);
        return new((graph, n) =>
        {
            var w = n.Constants[1]!;
            var (input, output) = (n.InputShapes[0]!, n.OutputShapes[0]!);
            var kernel = w.shape[2..];
            var (begin, end) = Padding.Resolve(autoPad, pads, input[2..], kernel, strides, dilations);
            var reach = Enumerable.Range(0, spatial).Select(i => dilations[i] * (kernel[i] - 1)).ToArray();
            var common = new[] { BackwardGraph.Attribute("group", group), BackwardGraph.Attribute("dilations", dilations), BackwardGraph.Attribute("kernel_shape", kernel) };
            var gradient = n.OutputGradients[0]!;
            if (strides.All(s => s == 1) && Enumerable.Range(0, spatial).All(i => begin[i] <= reach[i] && end[i] <= reach[i]))
            {
                long[] flippedPads = [.. reach.Zip(begin, (r, b) => r - b), .. reach.Zip(end, (r, e) => r - e)];
                // The flipped kernel's outputs are the forward's inputs, and its inputs the forward's
                // outputs. The Winograd kernel flips the forward's own weights as it transforms them,
                // so no flipped copy is folded and kept beside them.
                if (group == 1 && kernel is [3, 3] && dilations.All(d => d == 1) && flippedPads.All(p => p == 1)
                    && graph.Winograd.BackwardTile(w.shape[1], w.shape[0], input[2], input[3]) is long tile)
                    return [graph.NativeNode(NativeOps.WinogradConv, [gradient, graph.ConstantInput(n, 1)], BackwardGraph.Attribute("tile", tile),
                        BackwardGraph.Attribute("transposed", 1)), null, null];
                var flipped = graph.FlippedKernel(graph.ConstantInput(n, 1), w.shape, group);
                return [graph.Node("Conv", [gradient, flipped], [.. common, BackwardGraph.Attribute("pads", flippedPads)]), null, null];
            }
            if (ColumnGradient.Applies(graph, spatial, group, kernel))
                return [ColumnGradient.InputGradient(graph, gradient, graph.ConstantInput(n, 1), w.shape, input, output, strides, dilations, begin, end), null, null];
            if (ColumnGradient.AppliesDepthwise(graph, spatial, group, w.shape))
                return [ColumnGradient.DepthwiseInputGradient(graph, gradient, graph.ConstantInput(n, 1), w.shape, input, strides, dilations, begin, end), null, null];
            var outputPadding = Enumerable.Range(0, spatial)
                .Select(i => input[2 + i] - ((output[2 + i] - 1) * strides[i] - begin[i] - end[i] + reach[i] + 1)).ToArray();
            return [graph.Node("ConvTranspose", [gradient, graph.ConstantInput(n, 1)], [.. common, BackwardGraph.Attribute("strides", strides),
                BackwardGraph.Attribute("pads", [.. begin, .. end]), BackwardGraph.Attribute("output_padding", outputPadding)]), null, null];
        });
    }

    /// <summary>
    /// Computed as the full transposed convolution, then zero-extended by output_padding and
    /// cropped by the pads, so that asymmetric pads and output_shape need no special case.
    /// </summary>
    [OnnxOp("ConvTranspose")]
    private static OpKernel ConvTranspose(OpContext node)
    {
        var (spatial, strides, dilations, pads, autoPad, group) = ConvAttributes.From(node);
        var outputPadding = node.Attributes.Ints("output_padding") ?? new long[spatial];
        var outputShape = node.Attributes.Ints("output_shape");

        return (x, _) =>
        {
            var input = x[0]!;
            var w = x[1]!;
            var zeros = new long[spatial];
            var full = spatial switch
            {
                1 => F.conv_transpose2d(input.unsqueeze(2), w.unsqueeze(2), null, [1, .. strides], [0, 0], [0, 0], [1, .. dilations], group).squeeze(2),
                2 => F.conv_transpose2d(input, w, null, strides, zeros, zeros, dilations, group),
                _ => F.conv_transpose3d(input, w, null, strides, zeros, zeros, dilations, group),
            };
            var (begin, end) = TransposedCrop(autoPad, pads, strides, outputPadding, outputShape, input.shape[2..], full.shape[2..]);
            var result = F.pad(full, Padding.TorchOrder(zeros, outputPadding));
            for (var i = 0; i < spatial; i++)
                result = result.narrow(2 + i, begin[i], result.shape[2 + i] - begin[i] - end[i]);
            if (x.Length > 2 && x[2] is { } bias)
                result = result.Plus(bias.reshape([1, -1, .. Ones(spatial)]));
            return [result];
        };
    }

    /// <summary>
    /// With a constant kernel, ∂input is the convolution of the output's gradient with the same
    /// kernel, over the full transposed output: the crop is padded back, the output_padding cells
    /// (no input reached them) cut off.
    /// </summary>
    [OnnxGradient("ConvTranspose")]
    private static GradientRule? ConvTransposeGradient(OpContext node)
    {
        if (node.Constant(1) is null) return null;
        var (spatial, strides, dilations, pads, autoPad, group) = ConvAttributes.From(node);
        var outputPadding = node.Attributes.Ints("output_padding") ?? new long[spatial];
        var outputShape = node.Attributes.Ints("output_shape");
        return new((graph, n) =>
        {
            var kernel = n.Constants[1]!.shape[2..];
            var input = n.InputShapes[0]![2..];
            var full = Enumerable.Range(0, spatial).Select(i => strides[i] * (input[i] - 1) + dilations[i] * (kernel[i] - 1) + 1).ToArray();
            var (begin, end) = TransposedCrop(autoPad, pads, strides, outputPadding, outputShape, input, full);
            var after = end.Zip(outputPadding, (e, p) => e - p).ToArray();
            var gradient = n.OutputGradients[0]!;
            long[] convPads = [.. begin, .. after];
            if (convPads.Any(p => p < 0))
            {
                gradient = graph.Node("Pad", [gradient, graph.Ints([0, 0, .. begin, 0, 0, .. after])]);
                convPads = new long[2 * spatial];
            }
            return [graph.Node("Conv", [gradient, graph.ConstantInput(n, 1)], BackwardGraph.Attribute("group", group),
                BackwardGraph.Attribute("dilations", dilations), BackwardGraph.Attribute("kernel_shape", kernel),
                BackwardGraph.Attribute("strides", strides), BackwardGraph.Attribute("pads", convPads)), null, null];
        });
    }

    /// <summary>The cells cut from each end of the full transposed output once output_padding extended it.</summary>
    private static (long[] Begin, long[] End) TransposedCrop(string autoPad, long[] pads, long[] strides, long[] outputPadding, long[]? outputShape,
        long[] input, long[] full)
    {
        var spatial = input.Length;
        var begin = new long[spatial];
        var end = new long[spatial];
        for (var i = 0; i < spatial; i++)
        {
            var size = full[i] + outputPadding[i];
            if (outputShape is not null || autoPad is "SAME_UPPER" or "SAME_LOWER")
            {
                var wanted = outputShape is not null ? outputShape[^spatial..][i] : input[i] * strides[i];
                var total = size - wanted;
                (begin[i], end[i]) = autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2);
            }
            else if (autoPad != "VALID")
            {
                (begin[i], end[i]) = (pads[i], pads[spatial + i]);
            }
        }
        return (begin, end);
    }

    private static long[] Ones(int count) => Enumerable.Repeat(1L, count).ToArray();

    /// <summary>The attributes Conv and ConvTranspose share, with ONNX's defaults.</summary>
    private sealed record ConvAttributes(int Spatial, long[] Strides, long[] Dilations, long[] Pads, string AutoPad, long Group)
    {
        public static ConvAttributes From(OpContext node)
        {
            var a = node.Attributes;
            var weight = node.Constant(1);
            var spatial = (int)(a.Ints("kernel_shape")?.Length ?? (weight is null ? 2 : weight.dim() - 2));
            if (spatial is < 1 or > 3) throw node.Unsupported($"{spatial}-D convolution");
            return new ConvAttributes(spatial, a.Ints("strides") ?? Ones(spatial), a.Ints("dilations") ?? Ones(spatial),
                a.Ints("pads") ?? new long[2 * spatial], a.String("auto_pad", "NOTSET"), a.Int("group", 1));
        }
    }
}
