namespace SaliencyService.Explain.Ops;

/// <summary>ONNX padding rules shared by convolution and pooling.</summary>
internal static class Padding
{
    /// <summary>
    /// Begin and end pads per spatial axis. SAME_UPPER puts the odd pixel at the end, SAME_LOWER
    /// at the beginning; VALID pads nothing; NOTSET uses the explicit pads.
    /// </summary>
    public static (long[] Begin, long[] End) Resolve(string autoPad, long[] pads, long[] input, long[] kernel, long[] strides, long[] dilations)
    {
        var n = input.Length;
        var begin = new long[n];
        var end = new long[n];
        for (var i = 0; i < n; i++)
        {
            switch (autoPad)
            {
                case "SAME_UPPER" or "SAME_LOWER":
                    var output = (input[i] + strides[i] - 1) / strides[i];
                    var total = Math.Max(0, (output - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i]);
                    (begin[i], end[i]) = autoPad == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2);
                    break;
                case "VALID":
                    break;
                default:
                    (begin[i], end[i]) = (pads[i], pads[n + i]);
                    break;
            }
        }
        return (begin, end);
    }

    /// <summary>torch's pad list: last axis first, (begin, end) per axis.</summary>
    public static long[] TorchOrder(long[] begin, long[] end)
    {
        var order = new long[2 * begin.Length];
        for (var i = 0; i < begin.Length; i++)
        {
            var axis = begin.Length - 1 - i;
            order[2 * i] = begin[axis];
            order[2 * i + 1] = end[axis];
        }
        return order;
    }
}
