using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// The engine's own ONNX Runtime kernels (<c>src/Explain/Native</c>, domain <see cref="Domain"/>),
/// built beside the assemblies where the build found g++. Backward graphs use them only where the
/// library is there; every session that may run one registers it.
/// </summary>
public static class NativeOps
{
    public const string Domain = "ai.saliency";

    /// <summary>
    /// MaxPoolGrad(X, dY) → dX: each window's gradient to its first maximum in X; with the
    /// attribute <c>rectify</c> 1 (2: its positive part) also gated by 0 &lt; X &lt; <c>upper</c>,
    /// the backward of the rectifier whose output X is.
    /// </summary>
    public const string MaxPoolGrad = "MaxPoolGrad";

    /// <summary>
    /// Col2Im(columns [N, C·kh·kw, L], R [N, C, H, W]?, G [N, C, H, W]?) → image [N, C, H, W]: ONNX's
    /// Col2Im (opset 18) with <c>image_shape</c> and <c>block_shape</c> as attributes; the cells of
    /// overlapping blocks add. Then the residual R added and, with <c>rectify</c> and G, the
    /// rectifier's backward, as <see cref="WinogradConv"/>'s; R may be left out as <see cref="NoInput"/>.
    /// </summary>
    public const string Col2Im = "Col2Im";

    /// <summary>
    /// DepthwiseCol2Im(dY [N, C, oh, ow], W [C, 1, kh, kw], R?, G?) → dX [N, C, H, W]: the input gradient of
    /// a depthwise convolution with kernel W, as Col2Im of the columns W[c, tap]·dY[n, c] (never
    /// written); same attributes and optional inputs as <see cref="Col2Im"/>.
    /// </summary>
    public const string DepthwiseCol2Im = "DepthwiseCol2Im";

    /// <summary>
    /// SparseConvTranspose(dY [N, K, oh, ow], W [K, C, kh, kw]) → dX [N, C, H, W]: the input gradient of
    /// a convolution with kernel W (one group), <see cref="Col2Im"/>'s attributes, computed from dY's
    /// non-zero cells only: for a gradient that is mostly zeros (a strided max pool's).
    /// </summary>
    public const string SparseConvTranspose = "SparseConvTranspose";

    /// <summary>
    /// The most weights (K·C·kh·kw) whose convolution's input gradient is scattered from the gradient's
    /// non-zero cells: every cell reads the weights of its non-zero channels, which beyond 256 KB
    /// leave the second-level cache (ResNet-18's 3×3/2 convolutions of 128 to 256 channels, from a
    /// guided gradient 30% non-zero: 1.2–1.5 ms against 0.87 for the product and Col2Im; the stem's 9,408 weights: 0.7 against 1.5).
    /// </summary>
    public const long MaxSparseWeights = 1 << 16;

    /// <summary>SampleSum(X [N, ...]) → [1, ...]: X summed over its first axis (the batch's gradients, <see cref="Mirror.BackwardGraph.SumsBeforeProducts"/>).</summary>
    public const string SampleSum = "SampleSum";

    /// <summary>
    /// WinogradConv(X [N, C, H, W], W [K, C, 3, 3], B [K]?, R [N, K, H, W]?, G [N, K, H, W]?) → Y [N, K, H, W]:
    /// a 3×3 convolution with stride 1, dilation 1, one group and one cell of zero padding on every
    /// side, by Winograd's F(2×2, 3×3), or F(4×4, 3×3) with the attribute tile = 4 (fewer products,
    /// several times float32's rounding); then the bias B and the residual R added; with the
    /// attribute relu = 1, max(·, 0); with rectify = 1 or 2 (and upper, default ∞), the backward of
    /// the rectifier whose output is G, as <see cref="MaxPoolGrad"/>'s. B and R may be left out as
    /// <see cref="NoInput"/>.
    /// </summary>
    public const string WinogradConv = "WinogradConv";

    /// <summary>
    /// A float32 tensor of no elements: how a node of these kernels leaves out an optional input
    /// before the last one it gives (ONNX Runtime's lite kernels read every input up to the last given).
    /// </summary>
    public static TensorProto NoInput(string name)
    {
        var none = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        none.Dims.Add(0);
        return none;
    }

    private static readonly string? Library = Find();

    /// <summary>The library is beside the assemblies (and not switched off by <c>SALIENCY_NATIVE_OPS=0</c>).</summary>
    public static bool Available => Library is not null;

    /// <summary>Lets sessions made with <paramref name="options"/> run the kernels; ONNX Runtime keeps the library loaded while they live.</summary>
    public static void Register(SessionOptions options)
    {
        if (Library is null) return;
        AddDomainOnce();
        options.RegisterCustomOpLibrary(Library);
    }

    private static readonly Lock DomainLock = new();
    private static volatile bool domainAdded;

    /// <summary>
    /// Makes the first session with the library alone. Making a session, ONNX Runtime adds each of
    /// its custom domains to ONNX's process-wide table of domains if it is not there yet, without a
    /// lock: two first sessions made at once could both add <see cref="Domain"/>, and one of them
    /// failed ("the domain is already exist"; 19 of 60 fresh processes making 16 sessions at once)
    /// or, worse, both wrote the table. After this one, sessions only find it there. Not a
    /// <see cref="Lazy{T}"/>: one that failed would fail every later session, where this tries again.
    /// </summary>
    private static void AddDomainOnce()
    {
        if (domainAdded) return;
        lock (DomainLock)
        {
            if (domainAdded) return;
            using var options = new SessionOptions { IntraOpNumThreads = 1 }; // no pool threads for a session never run
            options.RegisterCustomOpLibrary(Library!);
            using var session = new InferenceSession(Identity().ToByteArray(), options);
            domainAdded = true;
        }
    }

    // y = x, one float: the least a session needs.
    private static ModelProto Identity()
    {
        return new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Version = 13 } },
            Graph = new GraphProto
            {
                Name = "native_ops_domain",
                Node = { new NodeProto { OpType = "Identity", Input = { "x" }, Output = { "y" } } },
                Input = { BackwardGraph.ValueInfo("x", TensorProto.Types.DataType.Float, []) },
                Output = { BackwardGraph.ValueInfo("y", TensorProto.Types.DataType.Float, []) },
            },
        };
    }

    private static string? Find()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("SALIENCY_NATIVE_OPS") == "0") return null;
        var path = Path.Combine(AppContext.BaseDirectory, "libsaliency_ops.so");
        return File.Exists(path) ? path : null;
    }
}
