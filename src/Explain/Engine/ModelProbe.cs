using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Explain.Engine;

/// <summary>The probe's input and the served model's output on it.</summary>
public sealed record ProbeRun(FloatTensor Input, FloatTensor Output);

/// <summary>The import's probe: one valid input the served model must run, and the mirror must agree on.</summary>
public static class ModelProbe
{
    /// <summary>The probe's shape: a batch of one, the image size of the preprocessing, 1 for other free sizes.</summary>
    public static long[] Shape(OnnxModel onnx, Preprocessing p)
    {
        var input = onnx.Inputs.First(i => i.Name == p.Input);
        if (input.Shape.Count != 4) return input.Shape.Select(d => d > 0 ? d : 1).ToArray();
        var channels = ImageTensorizer.ChannelCount(p);
        return p.Layout == "NCHW" ? [1, channels, p.Height, p.Width] : [1, p.Height, p.Width, channels];
    }

    /// <summary>
    /// Whether the probe is a valid input by construction (a batch the model takes, no guessed
    /// sizes), so that a run that fails is the model's fault.
    /// </summary>
    public static bool IsValidInput(OnnxModel onnx) =>
        onnx.Inputs is [{ Shape: var shape }] && shape.Count > 0 && shape[0] is -1 or 1 && shape.Skip(1).All(d => d > 0);

    /// <summary>
    /// A realistic input: a seeded random image through the model's own preprocessing; for inputs
    /// that are not images, seeded random values in [−1, 1), or zeros where the input takes integers
    /// (a valid index or id of any range).
    /// </summary>
    public static FloatTensor Input(OnnxModel onnx, Preprocessing p)
    {
        var shape = Shape(onnx, p);
        var random = new Random(20261127);
        if (shape.Length == 4)
        {
            using var image = new Image<Rgb24>(p.Width, p.Height);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (var x = 0; x < row.Length; x++)
                        row[x] = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
                }
            });
            var data = new float[ImageTensorizer.SampleLength(p)];
            ImageTensorizer.Write(image, p, data);
            return new FloatTensor(data, shape);
        }
        var values = new float[FloatTensor.ElementCount(shape)];
        if (FloatElements.IsInteger(onnx.ElementTypes[p.Input])) return new FloatTensor(values, shape);
        for (var i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return new FloatTensor(values, shape);
    }

    /// <summary>
    /// How far <paramref name="actual"/> scores are from <paramref name="expected"/> ones at most
    /// (infinite where their counts differ), and the largest expected score: a difference within
    /// a tolerance of that scale (<see cref="Agree"/>) is a run of the same model.
    /// </summary>
    public static (double Difference, double Scale) Compare(float[] expected, float[] actual) =>
        (actual.Length == expected.Length ? expected.Zip(actual, (e, a) => (double)Math.Abs(e - a)).DefaultIfEmpty(0).Max() : double.PositiveInfinity,
         expected.Select(v => (double)Math.Abs(v)).DefaultIfEmpty(0).Max());

    /// <summary>Whether a difference is within <paramref name="tolerance"/> of the scale (and 1e-6, for scores that are all near zero).</summary>
    public static bool Agree((double Difference, double Scale) comparison, double tolerance) =>
        comparison.Difference <= tolerance * comparison.Scale + 1e-6;

    /// <summary>
    /// The served model's output on the probe. A model ONNX Runtime cannot run on a valid input
    /// (a shape that can never be allocated, an op that fails at run time) can never predict: 422.
    /// </summary>
    public static ProbeRun Run(OnnxModel onnx, Preprocessing p, string outputName)
    {
        var probe = Input(onnx, p);
        try
        {
            return new ProbeRun(probe, onnx.Run(p.Input, probe, outputName));
        }
        catch (OnnxRuntimeException e)
        {
            throw new UnsupportedModelException("ONNX Runtime cannot run the model on a valid input of its shape: " + e.Message.Split('\n')[0]);
        }
    }
}
