using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>
/// Resize and Upsample, computed one axis at a time as a weighted gather along that axis. This
/// reproduces ONNX's coordinate transformations and rounding rules exactly, which
/// torch's interpolate does not for every mode (asymmetric linear, nearest_mode, ...).
/// </summary>
internal static class ResizeOps
{
    /// <summary>
    /// Upsample takes its scales as an attribute (opsets 7–8) or an input (9), Resize 10 as an
    /// input, both with asymmetric coordinates where nearest rounds down; Resize 11 takes roi,
    /// scales or sizes, and from opset 18 axes, with its coordinates and rounding as attributes.
    /// </summary>
    [OnnxOp("Upsample", 7)]
    [OnnxOp("Upsample", 9)]
    [OnnxOp("Resize", 10)]
    [OnnxOp("Resize", 11)]
    private static OpKernel Resize(OpContext node)
    {
        var spec = SpecOf(node);
        return (x, _) => [Resize(x[0]!, Targets(node, x, x[0]!.shape), spec)];
    }

    /// <summary>
    /// Each resized axis's gather, transposed: the matrix of its taps' weights (output index by
    /// input index) applied to the gradient along that axis by MatMul, ∂x = Aᵀ·G. For scales or
    /// sizes that are constant or made from shapes, keeping the batch axis.
    /// </summary>
    [OnnxGradient("Resize")]
    [OnnxGradient("Upsample")]
    private static GradientRule ResizeGradient(OpContext node)
    {
        var spec = SpecOf(node); // the kernel's build has refused the specs it cannot run
        return new((graph, n) =>
        {
            var shape = n.InputShapes[0]!;
            var rank = shape.Length;
            var targets = Targets(node, n.Constants, shape);
            // Sizes made from shapes that follow the batch (PyTorch's interpolate(size=...)) are no constants, but the output's shape says them.
            if (targets is (null, null) && node.OpType == "Resize" && node.Opset >= 11 && node.HasInput(3) && !n.FromValues[3])
                targets = (null, n.OutputShapes[0]);
            if (targets is (null, null)) throw new NotSupportedException("its scales or sizes are computed from the input's values");
            var gradient = n.OutputGradients[0]!;
            foreach (var (axis, length, outLength, scale) in Steps(shape, targets))
            {
                // Sizes name the batch as the import ran it; were it resized, the import's check against autograd would refuse this backward.
                if (length < 0 && targets.Sizes is not null) continue;
                if (length < 0) throw new NotSupportedException("it resizes the batch dimension");
                var (indices, weights) = Taps(length, outLength, scale, spec);
                var matrix = BackwardGraph.NewMatrix(outLength, length, "its interpolation");
                for (var t = 0; t < indices.Length; t++)
                for (var i = 0; i < outLength; i++)
                    matrix[i * length + indices[t][i]] += weights[t][i];
                using var values = tensor(matrix, [outLength, length]);
                gradient = AlongAxis(graph, gradient, graph.Constant(values), axis, rank);
            }
            return [gradient, .. new string?[n.Inputs.Length - 1]];
        });
    }

    /// <summary>G·A along the last axis, Aᵀ·G along the one before; other axes moved last and back.</summary>
    private static string AlongAxis(BackwardGraph graph, string gradient, string matrix, int axis, int rank)
    {
        if (axis == rank - 1) return graph.Node("MatMul", [gradient, matrix]);
        if (axis == rank - 2) return graph.Node("MatMul", [graph.Node("Transpose", [matrix]), gradient]);
        var perm = Enumerable.Range(0, rank).Select(d => (long)(d == axis ? rank - 1 : d == rank - 1 ? axis : d)).ToArray();
        var moved = graph.Node("Transpose", [gradient], BackwardGraph.Attribute("perm", perm));
        return graph.Node("Transpose", [graph.Node("MatMul", [moved, matrix])], BackwardGraph.Attribute("perm", perm));
    }

    private sealed record Spec(string Mode, string Transform, string NearestMode, double CubicA, bool ExcludeOutside);

    /// <summary>Upsample and Resize before 11: asymmetric coordinates, nearest rounds down; from 11 the attributes say. Checked when the node is built.</summary>
    private static Spec SpecOf(OpContext node)
    {
        if (node.OpType == "Upsample" && node.Opset < 9 && node.Attributes.Floats("scales") is null) throw node.Unsupported("missing scales");
        if (node.OpType == "Upsample" || node.Opset < 11) return new Spec(Mode(node), "asymmetric", "floor", -0.75, false);
        var a = node.Attributes;
        var transform = a.String("coordinate_transformation_mode", "half_pixel");
        if (transform is "tf_crop_and_resize" or "half_pixel_symmetric") throw node.Unsupported($"coordinate_transformation_mode '{transform}'");
        if (a.Int("antialias", 0) != 0) throw node.Unsupported("antialias = 1");
        if (a.String("keep_aspect_ratio_policy", "stretch") != "stretch") throw node.Unsupported("keep_aspect_ratio_policy other than stretch");
        return new Spec(Mode(node), transform, a.String("nearest_mode", "round_prefer_floor"), a.Float("cubic_coeff_a", -0.75f), a.Int("exclude_outside", 0) != 0);
    }

    private static string Mode(OpContext node) => node.Attributes.String("mode", "nearest") switch
    {
        "nearest" => "nearest",
        "linear" or "bilinear" or "trilinear" => "linear",
        "cubic" or "bicubic" => "cubic",
        var other => throw node.Unsupported($"mode '{other}'"),
    };

    /// <summary>
    /// Scales or sizes for every axis, from the node's inputs (the runtime values, or the
    /// backward's constants: both null where they are not constant).
    /// </summary>
    private static (double[]? Scales, long[]? Sizes) Targets(OpContext node, Tensor?[] x, long[] shape)
    {
        if (node.OpType == "Upsample" && node.Opset < 9)
            return (node.Attributes.Floats("scales")!.Select(s => (double)s).ToArray(), null);
        if (node.OpType == "Upsample" || node.Opset < 11)
            return (x.Length > 1 && x[1] is { } legacy ? OpHelpers.Doubles(legacy) : null, null);
        var scales = x.Length > 2 && x[2] is { NumberOfElements: > 0 } s ? OpHelpers.Doubles(s) : null;
        var sizes = x.Length > 3 && x[3] is { NumberOfElements: > 0 } z ? OpHelpers.Longs(z) : null;
        if (node.Attributes.Ints("axes") is not { } axes) return (scales, sizes);
        var fullScales = scales is null ? null : Enumerable.Repeat(1.0, shape.Length).ToArray();
        var fullSizes = sizes is null ? null : shape.ToArray();
        for (var i = 0; i < axes.Length; i++)
        {
            var axis = OpHelpers.Axis(axes[i], shape.Length);
            if (fullScales is not null) fullScales[axis] = scales![i];
            if (fullSizes is not null) fullSizes[axis] = sizes![i];
        }
        return (fullScales, fullSizes);
    }

    /// <summary>The axes that change: each one's length before and after, and its scale.</summary>
    private static IEnumerable<(int Axis, long Length, long OutLength, double Scale)> Steps(long[] shape, (double[]? Scales, long[]? Sizes) targets)
    {
        var (scales, sizes) = targets;
        for (var axis = 0; axis < shape.Length; axis++)
        {
            var length = shape[axis];
            var (outLength, scale) = sizes is not null
                ? (sizes[axis], (double)sizes[axis] / length)
                : ((long)Math.Floor(length * scales![axis]), scales[axis]);
            if (outLength == length && scale == 1) continue;
            yield return (axis, length, outLength, scale);
        }
    }

    private static Tensor Resize(Tensor input, (double[]? Scales, long[]? Sizes) targets, Spec spec)
    {
        var result = input;
        foreach (var (axis, length, outLength, scale) in Steps(input.shape, targets))
        {
            var (indices, weights) = Taps(length, outLength, scale, spec);
            var shape = Enumerable.Repeat(1L, (int)input.dim()).ToArray();
            shape[axis] = outLength;
            Tensor? resized = null;
            for (var t = 0; t < indices.Length; t++)
            {
                var gathered = result.index_select(axis, tensor(indices[t]));
                var term = spec.Mode == "nearest" ? gathered : gathered * tensor(weights[t]).reshape(shape).to_type(input.dtype);
                resized = resized is null ? term : resized.Plus(term);
            }
            result = resized!;
        }
        return result;
    }

    /// <summary>Output index i reads Σ_t weights[t][i] · input[indices[t][i]] along one axis.</summary>
    private static (long[][] Indices, float[][] Weights) Taps(long length, long outLength, double scale, Spec spec)
    {
        var taps = spec.Mode switch { "nearest" => 1, "linear" => 2, _ => 4 };
        var indices = new long[taps][];
        var weights = new float[taps][];
        for (var t = 0; t < taps; t++)
        {
            indices[t] = new long[outLength];
            weights[t] = new float[outLength];
        }
        for (var i = 0; i < outLength; i++)
        {
            var x = Source(i, length, outLength, scale, spec.Transform);
            switch (spec.Mode)
            {
                case "nearest":
                    indices[0][i] = Math.Clamp(Round(x, spec.NearestMode), 0, length - 1);
                    weights[0][i] = 1;
                    break;
                case "linear":
                    var clamped = Math.Clamp(x, 0, length - 1);
                    var low = (long)Math.Floor(clamped);
                    var high = Math.Min(low + 1, length - 1);
                    var w = clamped - low;
                    (indices[0][i], weights[0][i]) = (low, (float)(1 - w));
                    (indices[1][i], weights[1][i]) = (high, (float)w);
                    break;
                default:
                    var floor = (long)Math.Floor(x);
                    var fraction = x - floor;
                    var sum = 0.0;
                    var raw = new double[4];
                    for (var t = 0; t < 4; t++)
                    {
                        var index = floor - 1 + t;
                        raw[t] = Cubic(fraction + 1 - t, spec.CubicA);
                        if (spec.ExcludeOutside && (index < 0 || index >= length)) raw[t] = 0;
                        sum += raw[t];
                        indices[t][i] = Math.Clamp(index, 0, length - 1);
                    }
                    for (var t = 0; t < 4; t++) weights[t][i] = (float)(spec.ExcludeOutside ? raw[t] / sum : raw[t]);
                    break;
            }
        }

        return (indices, weights);
    }

    private static double Source(long i, long length, long outLength, double scale, string transform) => transform switch
    {
        "half_pixel" => (i + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => outLength > 1 ? (i + 0.5) / scale - 0.5 : 0,
        "align_corners" => outLength == 1 ? 0 : i * (length - 1) / (double)(outLength - 1),
        "asymmetric" => i / scale,
        "tf_half_pixel_for_nn" => (i + 0.5) / scale,
        _ => throw new UnsupportedOperatorException("Resize", 0, $"coordinate_transformation_mode '{transform}'"),
    };

    private static long Round(double x, string mode) => mode switch
    {
        "round_prefer_floor" => (long)Math.Ceiling(x - 0.5),
        "round_prefer_ceil" => (long)Math.Floor(x + 0.5),
        "floor" => (long)Math.Floor(x),
        "ceil" => (long)Math.Ceiling(x),
        _ => throw new UnsupportedOperatorException("Resize", 0, $"nearest_mode '{mode}'"),
    };

    /// <summary>Keys' cubic convolution kernel with coefficient a.</summary>
    private static double Cubic(double distance, double a)
    {
        var d = Math.Abs(distance);
        return d <= 1 ? ((a + 2) * d - (a + 3)) * d * d + 1
            : d < 2 ? ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            : 0;
    }
}
