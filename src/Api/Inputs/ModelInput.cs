using SaliencyService.Explain.Tensors;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// The inputs of one predict or explain request as a batch of the model input
/// (<see cref="Tensor"/> has the batch dimension first), with the size of each uploaded image
/// (null for tensor inputs) so maps can be drawn back at that size, and — when asked for — the
/// decoded images themselves, for overlays.
/// </summary>
public sealed record ModelInput(FloatTensor Tensor, IReadOnlyList<ImageSize?> SourceSizes, IReadOnlyList<Image<Rgb24>>? Images = null) : IDisposable
{
    public void Dispose()
    {
        foreach (var image in Images ?? []) image.Dispose();
    }

    public int Count => SourceSizes.Count;
}

public readonly record struct ImageSize(int Width, int Height);
