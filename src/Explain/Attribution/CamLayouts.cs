using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// How an activation lays out a spatial grid, so Grad-CAM can weigh any of them: CNN feature maps
/// ([N, C, h, w]), channels-last stages ([N, h, w, C], Swin) and transformer tokens ([N, T, C]
/// with T = h·w patches, after an optional class token, ViT). pytorch-grad-cam asks its users for
/// a <c>reshape_transform</c>; here the layout is read from the shape.
/// </summary>
public static class CamLayouts
{
    public const string ChannelsFirst = "NCHW";
    public const string ChannelsLast = "NHWC";
    /// <summary>[N, T, C]: a square grid of patch tokens, after a class token when T = 1 + h².</summary>
    public const string Tokens = "tokens";

    /// <summary>The grid layout of an activation of this shape (batch first), or null when it has none.</summary>
    public static string? Of(IReadOnlyList<long> shape) => shape.Count switch
    {
        4 when shape[1] == shape[2] && shape[3] != shape[2] && shape[3] > shape[1] => shape[1] * shape[2] > 1 ? ChannelsLast : null,
        4 => shape[2] * shape[3] > 1 ? ChannelsFirst : null, // a 1×1 grid (after global pooling) locates nothing
        3 when shape[1] > 1 && GridSide(shape[1]) is not null && shape[2] > shape[1] / 4 => Tokens,
        _ => null,
    };

    /// <summary>The activation (or its gradient) as [N, C, h, w], the class token dropped.</summary>
    public static Tensor ToChannelsFirst(Tensor value, string layout) => layout switch
    {
        ChannelsLast => value.permute(0, 3, 1, 2),
        Tokens => TokenGrid(value),
        _ => value,
    };

    private static Tensor TokenGrid(Tensor tokens)
    {
        var count = tokens.shape[1];
        var side = GridSide(count)!.Value;
        var patches = side * side == count ? tokens : tokens.narrow(1, count - side * side, side * side);
        return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2);
    }

    /// <summary>h when <paramref name="tokens"/> is h² or 1 + h² (h ≥ 2).</summary>
    private static long? GridSide(long tokens)
    {
        foreach (var count in new[] { tokens, tokens - 1 })
        {
            var side = (long)Math.Round(Math.Sqrt(count));
            if (side >= 2 && side * side == count) return side;
        }
        return null;
    }
}
