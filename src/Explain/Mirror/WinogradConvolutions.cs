using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// Which stride-1 3×3 convolutions of a pass run as <see cref="NativeOps.WinogradConv"/>: the
/// backward's input gradients with F(4×4) tiles and, merged, the forward's with F(2×2) tiles
/// (<see cref="Engine.ForwardWinograd"/>). F(4×4) takes 36 products for 144 multiply-adds; on Zen 4
/// (<c>in-process winograd</c>) it ran ResNet's 3×3 shapes in 0.47–0.64× ONNX Runtime's time for a
/// batch of 16, and the 64- and 128-channel ones in 0.61–0.65× for one sample (bench/analysis.md).
/// </summary>
/// <param name="MaxProducts">The most output × input channels a convolution may have.</param>
/// <param name="Race">
/// Where given, a one-sample convolution runs as the kernel only where it beats ONNX Runtime's on
/// this host (<see cref="WinogradRace"/>): on Zen 5 a backward's F(4×4) does, a forward's F(2×2) seldom.
/// </param>
public sealed record WinogradConvolutions(long MaxProducts, WinogradRace? Race = null)
{
    /// <summary>None: the backward runs off CPU, or without the engine's kernels.</summary>
    public static readonly WinogradConvolutions None = new(0);

    /// <summary>Every one, in the passes that sum a batch (integrated gradients, SmoothGrad).</summary>
    public static readonly WinogradConvolutions Summed = new(long.MaxValue);

    /// <summary>
    /// Up to 256 × 256 channels in a one-sample pass. A wider one's transformed filter (36·K·C
    /// floats, 36 MiB at 512 × 512) is read for few tiles (a 7² image has four), so it is bound by
    /// memory: 2.2× ONNX Runtime's time at 512 channels. In resnet18's guided pass (ONNX Runtime's
    /// profile) the 256-channel input gradients took 0.61–0.67 ms against ONNX Runtime's 1.04–1.09,
    /// the 256-channel forwards 1.02–1.04 against 1.03–1.04 (bench/analysis.md).
    /// </summary>
    public static readonly WinogradConvolutions OneSample = new(256 * 256);

    /// <summary>
    /// Fewer input or output channels keep ONNX Runtime's convolution: the tile's transforms are
    /// shared by too few products (and a group of six output channels is half idle at three).
    /// </summary>
    public const long MinimumChannels = 16;

    /// <summary>The kernel's <c>tile</c> attribute for a backward's input gradients: F(4×4, 3×3).</summary>
    public const long BackwardTile = 4;

    /// <summary>
    /// The kernel's <c>tile</c> attribute for a forward's convolutions: F(2×2, 3×3). A rectified
    /// activation is all of one sign, so F(4×4)'s transforms cancel large terms and round several times
    /// more than F(2×2)'s, and the forward's errors reach the scores and the rectifiers' gates: with
    /// F(4×4) there the Keras fixture's maps were 1–4% off its float64 ones (2% allowed).
    /// </summary>
    public const long ForwardTile = 2;

    /// <summary>The convolutions a pass runs as the kernel; a one-sample pass's raced where <paramref name="race"/> is given.</summary>
    public static WinogradConvolutions For(bool nativeKernels, bool summed, WinogradRace? race = null) =>
        !nativeKernels ? None : summed ? Summed : race is null ? OneSample : OneSample with { Race = race };

    /// <summary>
    /// Whether a stride-1 3×3 convolution of <paramref name="inputs"/> channels of
    /// <paramref name="height"/> × <paramref name="width"/> (≤ 0: not known) into
    /// <paramref name="outputs"/> runs as the kernel with <paramref name="tile"/>.
    /// </summary>
    public bool Takes(long outputs, long inputs, long height, long width, long tile) =>
        Math.Min(outputs, inputs) >= MinimumChannels && outputs * inputs <= MaxProducts
        && (Race is null || Race.Faster(outputs, inputs, height > 0 ? height : WinogradRace.MaxSide, width > 0 ? width : WinogradRace.MaxSide, tile));
}
