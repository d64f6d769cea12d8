using SaliencyService.Explain.Tensors;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// The inputs of one predict or explain request as a batch of the model input
/// (<see cref="Tensor"/> has the batch dimension first), and — when asked for — the decoded
/// images themselves, for drawing maps over them at their own size. Disposing it ends the
/// request's use of them: the images are freed and a pooled tensor goes back to its pool.
/// </summary>
public sealed class ModelInput(FloatTensor tensor, IReadOnlyList<Image<Rgb24>>? images = null, InputBuffers? pool = null) : IDisposable
{
    private int _disposed;

    public FloatTensor Tensor { get; } = tensor;
    public IReadOnlyList<Image<Rgb24>>? Images { get; } = images;

    /// <summary>Samples in the batch.</summary>
    public int Count => (int)Tensor.Shape[0];

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (var image in Images ?? []) image.Dispose();
        pool?.Return(Tensor.Data);
    }
}
