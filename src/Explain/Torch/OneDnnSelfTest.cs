using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SaliencyService.Explain.Torch;

/// <summary>
/// A known-answer test of the libtorch kernels the explainer relies on: convolution, transposed
/// convolution and pooling, forward and input gradient, float32 (oneDNN where it applies) against
/// float64 (libtorch's own kernels). It runs in a child process (<see cref="OneDnnGuard"/>), as a
/// faulty kernel may crash instead of answering. The shapes are those that broke libtorch 2.10's
/// oneDNN on AMD Zen 5: batch 2 with 2–4 channels (unwritten gradient elements), the 1×1 stride-2
/// projections of ResNet-50 (SIGFPE while the kernel is chosen), dilation, 1-D and 3-D.
/// </summary>
public static class OneDnnSelfTest
{
    /// <summary>Relative error above which a float32 result is wrong (float32 noise is ~1e-6 here).</summary>
    private const double Tolerance = 1e-3;

    /// <param name="Trials">
    /// Seeds tried. The Zen 5 fault left elements unwritten in about one run in four, so each
    /// small stride-1 case runs 20 times (all four missing it: ~1e-10); the projections are there
    /// for the crash, which comes while the kernel is chosen.
    /// </param>
    private sealed record Case(string Name, long[] Input, Func<Tensor, Tensor> Forward, int Trials = 20);

    /// <summary>Runs every case over its seeds; the first failure, or null when all agree.</summary>
    public static string? Run()
    {
        foreach (var test in Cases())
        for (var trial = 0; trial < test.Trials; trial++)
        {
            using var scope = NewDisposeScope();
            manual_seed(1000 * trial + test.Name.Length);
            var input = randn(test.Input, ScalarType.Float64);
            var single = Gradient(test, input.to_type(ScalarType.Float32));
            var exact = Gradient(test, input);
            foreach (var (what, actual, expected) in new[] { ("forward", single.Output, exact.Output), ("input gradient", single.Gradient, exact.Gradient) })
            {
                var scale = expected.abs().max().item<double>();
                var error = (actual.to_type(ScalarType.Float64) - expected).abs().max().item<double>();
                if (!(error <= Tolerance * Math.Max(scale, 1e-12)))
                    return $"{test.Name}: {what} off by {error:G3} at scale {scale:G3} (trial {trial})";
            }
        }
        return null;
    }

    private static (Tensor Output, Tensor Gradient) Gradient(Case test, Tensor input)
    {
        using var grad = enable_grad();
        var x = input.detach().requires_grad_();
        var output = test.Forward(x);
        // A fixed, non-uniform upstream gradient: every output element matters.
        var upstream = Scalars.Range(output.NumberOfElements, output.dtype).reshape(output.shape).sin();
        (output * upstream).sum().backward();
        return (output.detach(), x.grad!.detach());
    }

    private static IEnumerable<Case> Cases()
    {
        // Weights are made in float64 from a fixed seed and cast to the input's type, so both runs share them.
        static Tensor W(long[] shape, Tensor like)
        {
            using var generator = new TorchSharp.torch.Generator(7);
            return randn(shape, ScalarType.Float64, generator: generator).to_type(like.dtype).Times(0.3);
        }

        yield return new("conv3x3 relu, batch 2, 3→4 channels", [2, 3, 9, 10],
            x => F.conv2d(x, W([4, 3, 3, 3], x), padding: [1, 1]).relu());
        yield return new("conv3x3 dilated, batch 2, 2→3 channels", [2, 2, 11, 9],
            x => F.conv2d(x, W([3, 2, 3, 3], x), padding: [2, 2], dilation: [2, 2]).relu());
        yield return new("conv3x3 stride 2 grouped, batch 2, 4→4 channels", [2, 4, 9, 8],
            x => F.conv2d(x, W([4, 2, 3, 3], x), strides: [2, 2], padding: [1, 1], groups: 2), 8);
        yield return new("conv 1-D, batch 2, 3→4 channels", [2, 3, 11],
            x => F.conv2d(x.unsqueeze(2), W([4, 3, 1, 3], x), strides: [1, 2], padding: [0, 1]).squeeze(2).relu());
        yield return new("conv 3-D, batch 2, 2→3 channels", [2, 2, 5, 6, 5],
            x => F.conv3d(x, W([3, 2, 3, 3, 3], x), padding: [1, 1, 1]).relu());
        yield return new("conv_transpose stride 2, batch 2, 3→2 channels", [2, 3, 5, 6],
            x => F.conv_transpose2d(x, W([3, 2, 3, 3], x), null, [2, 2], [1, 1], [1, 1]), 8);
        yield return new("max and average pooling, batch 2", [2, 3, 9, 10],
            x => F.max_pool2d(x, [3, 3], [2, 2], [1, 1]).Plus(F.avg_pool2d(x, [3, 3], [2, 2], [1, 1])), 8);
        // ResNet-50's projection shortcuts: 1×1, stride 2, many channels.
        yield return new("conv1x1 stride 2 projection, batch 2, 64→128 channels", [2, 64, 14, 14],
            x => F.conv2d(x, W([128, 64, 1, 1], x), strides: [2, 2]), 2);
        yield return new("conv1x1 stride 2 projection, batch 1, 256→512 channels", [1, 256, 28, 28],
            x => F.conv2d(x, W([512, 256, 1, 1], x), strides: [2, 2]), 1);
        yield return new("conv1x1 stride 2 projection, batch 2, 1024→2048 channels", [2, 1024, 14, 14],
            x => F.conv2d(x, W([2048, 1024, 1, 1], x), strides: [2, 2]), 1);
    }
}
