using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// Which 3×3 convolutions of a pass run as <see cref="NativeOps.WinogradConv"/>, and with which
/// tiles: at stride 1 the backward's input gradients with F(4×4) (F(2×2) past <see cref="MaxLargeTileProducts"/>)
/// and, merged, the forward's with F(2×2) (<see cref="Engine.ForwardWinograd"/>); at stride 2 the
/// kernel's stride-2 forms (<see cref="TakesStrided"/>). F(4×4) takes 36
/// products for 144 multiply-adds; on Zen 4 (<c>in-process winograd</c>) it ran ResNet's 3×3 shapes
/// in 0.47–0.64× ONNX Runtime's time for a batch of 16, and the 64- and 128-channel ones in
/// 0.61–0.65× for one sample (bench/analysis.md).
/// </summary>
/// <param name="Enabled">Whether any convolution runs as the kernel.</param>
/// <param name="MaxLargeTileProducts">The most output × input channels a backward's F(4×4) may have; wider ones take F(2×2).</param>
/// <param name="Race">
/// Where given, a one-sample convolution runs as the kernel only where it beats ONNX Runtime's on
/// this host (<see cref="WinogradRace"/>): on Zen 5 a backward's F(4×4) does, a forward's F(2×2) seldom.
/// </param>
public sealed record WinogradConvolutions(bool Enabled, long MaxLargeTileProducts, WinogradRace? Race = null)
{
    /// <summary>None: the backward runs off CPU, or without the engine's kernels.</summary>
    public static readonly WinogradConvolutions None = new(false, 0);

    /// <summary>Every one, the backward's with F(4×4), in the passes that sum a batch (integrated gradients, SmoothGrad).</summary>
    public static readonly WinogradConvolutions Summed = new(true, long.MaxValue);

    /// <summary>
    /// A one-sample pass: F(4×4) up to 256 × 256 channels. A wider one's F(4×4) filter (36·K·C
    /// floats, 36 MiB at 512 × 512) is read for few tiles (a 7² image has four), so it is bound by
    /// memory: 1.7× ONNX Runtime's time at 512 channels. F(2×2)'s, 16 MiB there, is read ahead of
    /// its products, and in a pass, where each weight comes from memory, it took 0.79–0.89× ONNX
    /// Runtime's time (bench/analysis.md, fiftieth pass).
    /// </summary>
    public static readonly WinogradConvolutions OneSample = new(true, OneSampleLargeTileProducts);

    /// <summary>The most output × input channels a one-sample pass's F(4×4) may have (<see cref="OneSample"/>).</summary>
    public const long OneSampleLargeTileProducts = 256 * 256;

    /// <summary>
    /// Fewer input or output channels keep ONNX Runtime's convolution: the tile's transforms are
    /// shared by too few products (and a group of six output channels is half idle at three).
    /// </summary>
    public const long MinimumChannels = 16;

    /// <summary>The kernel's <c>tile</c> attribute for F(4×4, 3×3): a backward's input gradients.</summary>
    public const long LargeTile = 4;

    /// <summary>
    /// The kernel's <c>tile</c> attribute for F(2×2, 3×3): a forward's convolutions, and a backward's
    /// past <see cref="MaxLargeTileProducts"/>. A rectified activation is all of one sign, so F(4×4)'s
    /// transforms cancel large terms and round several times more than F(2×2)'s, and the forward's
    /// errors reach the scores and the rectifiers' gates: with F(4×4) there the Keras fixture's maps
    /// were 1–4% off its float64 ones (2% allowed). With F(4×4)'s interpolation points of now, which
    /// round 2–3× less, still 3–4%; and summing each rectifier input near zero again directly left
    /// its maps as far from F(2×2)'s (1–3%): the error also moves which cell a max pool picks.
    /// </summary>
    public const long SmallTile = 2;

    /// <summary>A one-sample pass's convolutions, raced where <paramref name="race"/> is given.</summary>
    public static WinogradConvolutions For(bool nativeKernels, bool summed, WinogradRace? race = null) =>
        !nativeKernels ? None : summed ? Summed : race is null ? OneSample : OneSample with { Race = race };

    /// <summary>
    /// The tile a forward's stride-1 3×3 convolution of <paramref name="inputs"/> channels of
    /// <paramref name="height"/> × <paramref name="width"/> (≤ 0: not known) into
    /// <paramref name="outputs"/> runs with as the kernel, or null: ONNX Runtime's convolution.
    /// </summary>
    public long? ForwardTile(long outputs, long inputs, long height, long width) =>
        Takes(outputs, inputs, height, width, SmallTile, forward: true) ? SmallTile : null;

    /// <summary>As <see cref="ForwardTile"/>, for a backward's input gradient (a convolution by the flipped kernel).</summary>
    public long? BackwardTile(long outputs, long inputs, long height, long width)
    {
        var tile = outputs * inputs <= MaxLargeTileProducts ? LargeTile : SmallTile;
        return Takes(outputs, inputs, height, width, tile, forward: false) ? tile : null;
    }

    /// <summary>
    /// Whether a stride-2 3×3 convolution with one cell of padding of <paramref name="inputs"/>
    /// channels of <paramref name="height"/> × <paramref name="width"/> (≤ 0: not known) into
    /// <paramref name="outputs"/> runs as the kernel's stride-2 form in a forward, or its input
    /// gradient as the transposed form in a backward (the five-product algorithm: 25 products for 36
    /// multiply-adds), raced where <see cref="Race"/> is given.
    /// </summary>
    public bool TakesStrided(long outputs, long inputs, long height, long width, bool forward) =>
        Enabled && Math.Min(outputs, inputs) >= MinimumChannels
        && (Race is null || Race.FasterStrided(outputs, inputs, height > 0 ? height : WinogradRace.MaxSide, width > 0 ? width : WinogradRace.MaxSide, forward));

    private bool Takes(long outputs, long inputs, long height, long width, long tile, bool forward) =>
        Enabled && Math.Min(outputs, inputs) >= MinimumChannels
        && (Race is null || Race.Faster(outputs, inputs, height > 0 ? height : WinogradRace.MaxSide, width > 0 ? width : WinogradRace.MaxSide, tile, forward));
}
