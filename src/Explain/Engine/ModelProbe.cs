using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Inference;
using SaliencyService.Explain.Tensors;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Explain.Engine;

/// <summary>The import's probe: one valid input the served model must run, and the mirror must agree on.</summary>
public static class ModelProbe
{
    /// <summary>
    /// A realistic input: a seeded random image through the model's own preprocessing (random
    /// normal values for inputs that are not images).
    /// </summary>
    public static FloatTensor Input(OnnxModel onnx, Preprocessing p)
    {
        var input = onnx.Inputs.First(i => i.Name == p.Input);
        var random = new Random(20261127);
        if (input.Shape.Count == 4)
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
            var channels = ImageTensorizer.ChannelCount(p);
            long[] shape = p.Layout == "NCHW" ? [1, channels, p.Height, p.Width] : [1, p.Height, p.Width, channels];
            return new FloatTensor(data, shape);
        }
        var dims = input.Shape.Select((d, i) => d > 0 ? d : i == 0 ? 1 : 1).ToArray();
        var values = new float[FloatTensor.ElementCount(dims)];
        for (var i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return new FloatTensor(values, dims);
    }

    /// <summary>
    /// The served model's output on the probe. A model ONNX Runtime cannot run on a valid input
    /// (a shape that can never be allocated, an op that fails at run time) can never predict: 422.
    /// </summary>
    public static FloatTensor Run(OnnxModel onnx, Preprocessing p, FloatTensor probe, string outputName)
    {
        try
        {
            return onnx.Run(p.Input, probe, outputName);
        }
        catch (OnnxRuntimeException e)
        {
            throw ProblemException.Unprocessable("ONNX Runtime cannot run the model on a valid input of its shape: " + e.Message.Split('\n')[0]);
        }
    }
}
