using SaliencyService.Explain.Tensors;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// The inputs of one predict or explain request as a batch of the model input
/// (<see cref="Tensor"/> has the batch dimension first), and — when asked for — the decoded
/// images themselves, for drawing maps over them at their own size.
/// </summary>
public sealed record ModelInput(FloatTensor Tensor, IReadOnlyList<Image<Rgb24>>? Images = null) : IDisposable
{
    public void Dispose()
    {
        foreach (var image in Images ?? []) image.Dispose();
    }

    /// <summary>Samples in the batch.</summary>
    public int Count => (int)Tensor.Shape[0];
}
