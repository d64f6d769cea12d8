using SaliencyService.Explain.Mirror;
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
    /// <summary>Opsets 7–8: scales attribute; asymmetric coordinates; nearest rounds down.</summary>
    [OnnxOp("Upsample", 7)]
    private static OpKernel UpsampleAttribute(OpContext node)
    {
        var scales = node.Attributes.Floats("scales") ?? throw node.Unsupported("missing scales");
        var spec = new Spec(Mode(node), "asymmetric", "floor", -0.75, false);
        return (x, _) => [Resize(x[0]!, scales.Select(s => (double)s).ToArray(), null, spec)];
    }

    [OnnxOp("Upsample", 9)]
    private static OpKernel UpsampleInput(OpContext node)
    {
        var spec = new Spec(Mode(node), "asymmetric", "floor", -0.75, false);
        return (x, _) => [Resize(x[0]!, OpHelpers.Doubles(x[1]!), null, spec)];
    }

    [OnnxOp("Resize", 10)]
    private static OpKernel Resize10(OpContext node)
    {
        var spec = new Spec(Mode(node), "asymmetric", "floor", -0.75, false);
        return (x, _) => [Resize(x[0]!, OpHelpers.Doubles(x[1]!), null, spec)];
    }

    /// <summary>Inputs X, roi, scales, sizes (either scales or sizes); opset 18 adds axes.</summary>
    [OnnxOp("Resize", 11)]
    private static OpKernel Resize11(OpContext node)
    {
        var a = node.Attributes;
        var transform = a.String("coordinate_transformation_mode", "half_pixel");
        if (transform is "tf_crop_and_resize" or "half_pixel_symmetric") throw node.Unsupported($"coordinate_transformation_mode '{transform}'");
        if (a.Int("antialias", 0) != 0) throw node.Unsupported("antialias = 1");
        if (a.String("keep_aspect_ratio_policy", "stretch") != "stretch") throw node.Unsupported("keep_aspect_ratio_policy other than stretch");
        var axes = a.Ints("axes");
        var spec = new Spec(Mode(node), transform, a.String("nearest_mode", "round_prefer_floor"),
            a.Float("cubic_coeff_a", -0.75f), a.Int("exclude_outside", 0) != 0);
        return (x, _) =>
        {
            var input = x[0]!;
            var scales = x.Length > 2 && x[2] is { NumberOfElements: > 0 } s ? OpHelpers.Doubles(s) : null;
            var sizes = x.Length > 3 && x[3] is { NumberOfElements: > 0 } z ? OpHelpers.Longs(z) : null;
            if (axes is not null)
            {
                var rank = (int)input.dim();
                var fullScales = scales is null ? null : Enumerable.Repeat(1.0, rank).ToArray();
                var fullSizes = sizes is null ? null : input.shape.ToArray();
                for (var i = 0; i < axes.Length; i++)
                {
                    var axis = OpHelpers.Axis(axes[i], rank);
                    if (fullScales is not null) fullScales[axis] = scales![i];
                    if (fullSizes is not null) fullSizes[axis] = sizes![i];
                }
                (scales, sizes) = (fullScales, fullSizes);
            }
            return [Resize(input, scales, sizes, spec)];
        };
    }

    private static string Mode(OpContext node) => node.Attributes.String("mode", "nearest") switch
    {
        "nearest" => "nearest",
        "linear" or "bilinear" or "trilinear" => "linear",
        "cubic" or "bicubic" => "cubic",
        var other => throw node.Unsupported($"mode '{other}'"),
    };

    private sealed record Spec(string Mode, string Transform, string NearestMode, double CubicA, bool ExcludeOutside);

    private static Tensor Resize(Tensor input, double[]? scales, long[]? sizes, Spec spec)
    {
        var result = input;
        for (var axis = 0; axis < input.dim(); axis++)
        {
            var length = input.shape[axis];
            var (outLength, scale) = sizes is not null
                ? (sizes[axis], (double)sizes[axis] / length)
                : ((long)Math.Floor(length * scales![axis]), scales[axis]);
            if (outLength == length && scale == 1) continue;
            result = ResizeAxis(result, axis, length, outLength, scale, spec);
        }
        return result;
    }

    /// <summary>Output index i reads Σ_t weight[i,t] · input[index[i,t]] along <paramref name="axis"/>.</summary>
    private static Tensor ResizeAxis(Tensor input, int axis, long length, long outLength, double scale, Spec spec)
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

        var shape = Enumerable.Repeat(1L, (int)input.dim()).ToArray();
        shape[axis] = outLength;
        Tensor? result = null;
        for (var t = 0; t < taps; t++)
        {
            var gathered = input.index_select(axis, tensor(indices[t]));
            var term = spec.Mode == "nearest" ? gathered : gathered * tensor(weights[t]).reshape(shape).to_type(input.dtype);
            result = result is null ? term : result + term;
        }
        return result!;
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
