using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

/// <summary>
/// A small ResNet's nodes, over initializers the caller names w0…w4, wd and fc: a stem (w0) and
/// its rectifier r0, a 3×3/2 max pool, a residual block (w1, w2; its skip the pool's output), a
/// strided block (w3 at 3×3/2, or another odd side, then w4) with a strided 1×1 shortcut (wd), global average pooling and
/// a classifier (fc). Its backward has ResNet's meeting points: the strided convolution's and the
/// shortcut's input gradients at r2, the block's skip and c1's input gradient at the max pool.
/// </summary>
public static class StridedResidualNetwork
{
    /// <param name="side">The strided convolution's kernel side (w3's), padded to keep the image's size at stride 1.</param>
    public static OnnxTestModel Nodes(OnnxTestModel model, long side = 3) => model
        .Node("Conv", ["x", "w0"], ["c0"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c0"], ["r0"])
        .Node("MaxPool", ["r0"], ["m"], Ints("kernel_shape", 3, 3), Ints("strides", 2, 2), Ints("pads", 1, 1, 1, 1))
        .Node("Conv", ["m", "w1"], ["c1"], Ints("pads", 1, 1, 1, 1)).Node("Relu", ["c1"], ["r1"])
        .Node("Conv", ["r1", "w2"], ["c2"], Ints("pads", 1, 1, 1, 1)).Node("Add", ["c2", "m"], ["s2"]).Node("Relu", ["s2"], ["r2"])
        .Node("Conv", ["r2", "w3"], ["c3"], Ints("strides", 2, 2), Ints("pads", side / 2, side / 2, side / 2, side / 2)).Node("Relu", ["c3"], ["r3"])
        .Node("Conv", ["r3", "w4"], ["c4"], Ints("pads", 1, 1, 1, 1))
        .Node("Conv", ["r2", "wd"], ["d"], Ints("strides", 2, 2)).Node("Add", ["c4", "d"], ["s4"]).Node("Relu", ["s4"], ["r4"])
        .Node("GlobalAveragePool", ["r4"], ["g"]).Node("Flatten", ["g"], ["f"])
        .Node("Gemm", ["f", "fc"], ["y"], Int("transB", 1)).Output("y");
}
