using SaliencyService.Contracts;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Imaging;

/// <summary>
/// Fills the gaps of a <see cref="ModelManifest"/> from the model's own input, following the
/// contract's defaults, and refuses manifests that cannot describe that input.
/// </summary>
public static class PreprocessingResolver
{
    private const int DefaultSize = 224;

    /// <param name="manifest">The uploaded manifest (may be empty).</param>
    /// <param name="inputs">The model's inputs in graph order.</param>
    /// <param name="outputs">The model's outputs in graph order.</param>
    public static Preprocessing Resolve(ModelManifest manifest, IReadOnlyList<TensorDescriptor> inputs, IReadOnlyList<TensorDescriptor> outputs)
    {
        if (inputs.Count == 0) throw new UnsupportedModelException("The model has no inputs.");
        var input = manifest.Input is null
            ? inputs[0]
            : inputs.FirstOrDefault(i => i.Name == manifest.Input)
              ?? throw Invalid($"input '{manifest.Input}' is not an input of the model (it has: {string.Join(", ", inputs.Select(i => i.Name))}).");

        var shape = input.Shape;
        var layout = (manifest.Layout ?? (shape.Count == 4 && shape[^1] is 1 or 3 ? "NHWC" : "NCHW")).ToUpperInvariant();
        if (layout is not ("NCHW" or "NHWC")) throw Invalid($"layout must be NCHW or NHWC, not '{manifest.Layout}'.");

        var (heightDim, widthDim, channelDim) = layout == "NCHW" ? (2, 3, 1) : (1, 2, 3);
        long Dim(int axis) => shape.Count == 4 ? shape[axis] : -1;

        var height = manifest.Height ?? (Dim(heightDim) > 0 ? (int)Dim(heightDim) : DefaultSize);
        var width = manifest.Width ?? (Dim(widthDim) > 0 ? (int)Dim(widthDim) : DefaultSize);
        if (height is < 1 or > 16384 || width is < 1 or > 16384) throw Invalid($"height and width must be 1–16384, not {height}×{width}.");
        CheckFixed(Dim(heightDim), height, "height");
        CheckFixed(Dim(widthDim), width, "width");

        var channelCount = Dim(channelDim);
        var channels = (manifest.Channels ?? (channelCount == 1 ? "GRAY" : "RGB")).ToUpperInvariant();
        var expectedCount = channels switch
        {
            "RGB" or "BGR" => 3,
            "GRAY" or "L" => 1,
            _ => throw Invalid($"channels must be RGB, BGR or GRAY, not '{manifest.Channels}'."),
        };
        if (channels == "L") channels = "GRAY";
        if (channelCount > 0 && channelCount != expectedCount)
            throw Invalid($"channels '{channels}' has {expectedCount} channel(s) but the input '{input.Name}' has {channelCount}.");

        // An integer input (tf2onnx's uint8 images) takes the pixels as they are: the model scales them itself.
        var integer = FloatElements.IsInteger(input.DataType);
        var scale = manifest.Scale ?? (integer ? 1.0 : 1.0 / 255.0);
        var mean = PerChannel(manifest.Mean, 0.0, expectedCount, "mean");
        var std = PerChannel(manifest.Std, 1.0, expectedCount, "std");
        if (std.Any(s => s == 0 || !double.IsFinite(s))) throw Invalid("std values must be finite and non-zero.");
        if (!double.IsFinite(scale) || mean.Any(m => !double.IsFinite(m))) throw Invalid("scale and mean must be finite.");
        if (integer && (scale != 1 || mean.Any(m => m != 0) || std.Any(s => s != 1)))
            throw Invalid($"the input '{input.Name}' is {input.DataType}, so it takes an image's pixel values as they are: scale must be 1, mean 0 and std 1.");

        return new Preprocessing(input.Name, layout, height, width, channels, scale, mean, std) { Output = Output(manifest.Output, outputs) };
    }

    /// <summary>
    /// The manifest's output, checked to be a real-valued output of the model; by default the first
    /// float32 output (the one explanations explain), else the first real-valued one (a float16 export's).
    /// </summary>
    private static string? Output(string? chosen, IReadOnlyList<TensorDescriptor> outputs)
    {
        if (chosen is null)
            return (outputs.FirstOrDefault(o => o.DataType == "float32") ?? outputs.FirstOrDefault(o => FloatElements.IsReal(o.DataType)))?.Name;
        var output = outputs.FirstOrDefault(o => o.Name == chosen)
                     ?? throw Invalid($"output '{chosen}' is not an output of the model (it has: {string.Join(", ", outputs.Select(o => o.Name))}).");
        return FloatElements.IsReal(output.DataType)
            ? chosen
            : throw Invalid($"output '{chosen}' is {output.DataType}; predict ranks and explanations explain a real-valued output.");
    }

    private static void CheckFixed(long modelDim, int value, string what)
    {
        if (modelDim > 0 && modelDim != value)
            throw Invalid($"{what} {value} disagrees with the model input's fixed {what} {modelDim}.");
    }

    private static double[] PerChannel(IReadOnlyList<double>? values, double fallback, int channels, string what)
    {
        if (values is null || values.Count == 0) return Enumerable.Repeat(fallback, channels).ToArray();
        if (values.Count == 1) return Enumerable.Repeat(values[0], channels).ToArray();
        if (values.Count != channels) throw Invalid($"{what} has {values.Count} values but the image has {channels} channel(s).");
        return values.ToArray();
    }

    private static InvalidArgumentException Invalid(string detail) => new InvalidArgumentException("Invalid manifest: " + detail);
}
