using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Integrated gradients and SmoothGrad hold one batch of their steps or noisy samples at a time:
/// a request's memory does not grow with how many it asks for (the most, 1,024 steps or 512
/// samples, of a 256² input would be 0.8 and 0.4 GB at once, several times over).
/// </summary>
[Collection(nameof(AloneInTheProcess))]
public sealed class ExplainMemoryTests
{
    private const int Side = 256;
    private const long Margin = 256L << 20;

    [Fact]
    public void The_most_steps_or_samples_take_no_more_memory_than_two_batches()
    {
        var model = new OnnxTestModel(13, [-1, 3, Side, Side])
            .Initializer("w", Parity.RandomInput([4 * 3], 9, -1, 1), 4, 3, 1, 1)
            .Node("Conv", ["x", "w"], ["c"])
            .Node("Relu", ["c"], ["r"])
            .Node("GlobalAveragePool", ["r"], ["g"])
            .Node("Flatten", ["g"], ["y"])
            .Output("y");
        model.WithFile(path =>
        {
            var (analysed, _, onnx, _) = FixtureExplainers.Analyse(path, true, new Preprocessing("x", "NCHW", Side, Side, "RGB", 1, [0, 0, 0], [1, 1, 1]));
            using var owned = onnx;
            using var explainer = analysed!;
            var input = new FloatTensor(Parity.RandomInput([1, 3, Side, Side], 10, 0, 1), [1, 3, Side, Side]);
            var ig = AttributionMethods.Get("integrated-gradients");
            var smoothgrad = AttributionMethods.Get("smoothgrad");
            AttributionMap Explain(ExplainRequest request) => Explainer.Explain(explainer, input, request, null, "NCHW");

            // Two batches of 16 each first: the engine's working memory for a batch, kept for the next.
            Explain(new ExplainRequest(ig, Steps: 32));
            Explain(new ExplainRequest(smoothgrad, Samples: 32, Seed: 1));
            var before = ProcStat.Resident();
            AttributionMap? steps = null, samples = null;
            var peak = PeakWhile(() =>
            {
                steps = Explain(new ExplainRequest(ig, Steps: 1024));
                samples = Explain(new ExplainRequest(smoothgrad, Samples: 512, Seed: 1));
            });

            Assert.Equal(1024, steps!.Parameters["steps"]);
            Assert.Equal(512, samples!.Parameters["samples"]);
            Assert.True(peak - before < Margin, $"RSS MiB: {before >> 20} before, peak {peak >> 20} while explaining");
        });
    }

    /// <summary>The most resident memory seen while <paramref name="work"/> runs, read every millisecond.</summary>
    private static long PeakWhile(Action work)
    {
        var peak = ProcStat.Resident();
        using var done = new CancellationTokenSource();
        var sampler = Task.Run(() =>
        {
            while (!done.IsCancellationRequested)
            {
                peak = Math.Max(peak, ProcStat.Resident());
                Thread.Sleep(1);
            }
        });
        try
        {
            work();
        }
        finally
        {
            done.Cancel();
            sampler.Wait();
        }
        return Math.Max(peak, ProcStat.Resident());
    }
}
