using SaliencyService.Api.Errors;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.Inputs;

/// <summary>
/// Reads the multipart inputs of predict and explain (<c>image</c> parts or one <c>tensor</c>
/// part) into a batch of the model input, checking every size against the configured limits.
/// </summary>
public sealed class ModelInputReader(IOptions<SaliencyOptions> options)
{
    private readonly SaliencyOptions _options = options.Value;
    private readonly ImageLoader _images = new(options.Value.MaxImagePixels);

    /// <param name="keepImages">Keep the decoded uploads in the result (explain overlays); the caller disposes it.</param>
    public async Task<ModelInput> ReadAsync(HttpRequest request, ModelDescriptor model, bool allowBatch, CancellationToken cancellationToken, bool keepImages = false)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        RequestBodyLimit.Apply(request, _options.MaxRequestBodyBytes);
        var parts = MultipartParts.Of(request, "Send multipart/form-data with an 'image' or a 'tensor' part.");
        // Each part is decoded as it arrives: a tensor straight into the model input, without a
        // buffered copy of the body (for a 224² float tensor that copy cost more than reading it).
        var images = new List<ReadOnlyMemory<byte>>();
        FloatTensor? tensor = null;
        while (await parts.NextAsync(cancellationToken) is { } part)
        {
            if (part.Name is not ("image" or "tensor")) continue; // skipped: the reader drains it
            if (part.Name == "image" ? tensor is not null : images.Count > 0)
                throw ProblemException.BadRequest("Send either 'image' or 'tensor' parts, not both.");
            if (part.Name == "tensor")
            {
                if (tensor is not null) throw ProblemException.BadRequest("Send one 'tensor' part; put a batch in its first dimension.");
                var bodyBytes = request.ContentLength ?? _options.MaxRequestBodyBytes;
                tensor = await MultipartParts.ClientRead(() => Npy.ReadAsync(part.Body, _options.MaxTensorElements, bodyBytes, cancellationToken), cancellationToken);
                continue;
            }
            if (!allowBatch && images.Count == 1) throw ProblemException.BadRequest("This endpoint takes one input.");
            if (images.Count == _options.MaxBatchImages) throw ProblemException.BadRequest($"At most {_options.MaxBatchImages} images per request.");
            images.Add(await ReadAllAsync(part.Body, cancellationToken));
        }
        if (tensor is null && images.Count == 0) throw ProblemException.BadRequest("An 'image' or a 'tensor' part is required.");

        var input = InputOf(model);
        var result = tensor is null ? ReadImages(images, model.Preprocessing, input, keepImages) : CheckTensor(tensor, input);
        if (!allowBatch && result.Count > 1)
        {
            result.Dispose(); // the decoded images it keeps
            throw ProblemException.BadRequest("This endpoint takes one input, not a batch.");
        }
        Observability.ServerTiming.Add("read", started);
        return result;
    }

    private ModelInput ReadImages(IReadOnlyList<ReadOnlyMemory<byte>> files, Preprocessing p, TensorDescriptor input, bool keepImages)
    {
        if (input.Shape.Count != 4)
            throw ProblemException.BadRequest($"The model input '{input.Name}' has rank {input.Shape.Count}, not an image; send a 'tensor'.");
        var sampleShape = p.Layout == "NCHW"
            ? new long[] { ImageTensorizer.ChannelCount(p), p.Height, p.Width }
            : [p.Height, p.Width, ImageTensorizer.ChannelCount(p)];
        var sampleLength = ImageTensorizer.SampleLength(p);
        var data = new float[checked(sampleLength * files.Count)];
        var kept = new List<SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>>();
        try
        {
            for (var i = 0; i < files.Count; i++)
            {
                var image = _images.Load(files[i], files.Count == 1 ? "image" : $"image[{i}]");
                ImageTensorizer.Write(image, p, data.AsSpan(i * sampleLength, sampleLength));
                if (keepImages) kept.Add(image);
                else image.Dispose();
            }
        }
        catch
        {
            kept.ForEach(image => image.Dispose());
            throw;
        }
        return new ModelInput(new FloatTensor(data, [files.Count, .. sampleShape]), keepImages ? kept : null);
    }

    /// <summary>The uploaded tensor, checked (finite, of the model input's shape) and with its batch dimension.</summary>
    private ModelInput CheckTensor(FloatTensor tensor, TensorDescriptor input)
    {
        var nonFinite = Inference.NonFinite.IndexOf(tensor.Data);
        if (nonFinite >= 0)
            throw ProblemException.BadRequest($"The tensor holds a non-finite value ({tensor.Data[nonFinite]} at flat index {nonFinite}); models are fed finite numbers only.");
        var modelShape = input.Shape;
        var withBatch = tensor.Shape.Length == modelShape.Count
            ? tensor
            : tensor.Shape.Length == modelShape.Count - 1
                ? tensor with { Shape = [1, .. tensor.Shape] }
                : throw ShapeMismatch(tensor.Shape, modelShape);
        if (withBatch.Shape[0] < 1) throw ProblemException.BadRequest("The tensor's batch dimension is empty.");
        for (var d = 1; d < modelShape.Count; d++)
        {
            var expected = modelShape[d];
            var actual = withBatch.Shape[d];
            if (actual < 1 || (expected > 0 && actual != expected)) throw ShapeMismatch(tensor.Shape, modelShape);
        }
        if (withBatch.Shape[0] > _options.MaxBatchImages)
            throw ProblemException.BadRequest($"At most {_options.MaxBatchImages} samples per request.");
        return new ModelInput(withBatch);
    }

    private static TensorDescriptor InputOf(ModelDescriptor model) =>
        model.Inputs.First(i => i.Name == model.Preprocessing.Input);

    private static ProblemException ShapeMismatch(long[] actual, IReadOnlyList<long> model) =>
        ProblemException.BadRequest(
            $"The tensor has shape [{string.Join(", ", actual)}]; the model input is [{string.Join(", ", model)}] " +
            "(-1 = any size), with or without the batch dimension.");

    private static Task<ReadOnlyMemory<byte>> ReadAllAsync(Stream body, CancellationToken cancellationToken) =>
        MultipartParts.ClientRead(async () =>
        {
            var buffer = new MemoryStream();
            await body.CopyToAsync(buffer, cancellationToken);
            return new ReadOnlyMemory<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
        }, cancellationToken);
}
