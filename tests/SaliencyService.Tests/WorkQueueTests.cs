using SaliencyService.Api.Errors;
using SaliencyService.Api.Inference;
using SaliencyService.Explain;
using Xunit;

namespace SaliencyService.Tests;

public sealed class WorkQueueTests
{
    [Fact]
    public async Task A_full_queue_answers_503_at_once_and_a_slow_slot_after_its_timeout()
    {
        using var queue = new WorkQueue("test", maxConcurrent: 1, maxQueued: 1, timeout: TimeSpan.FromMilliseconds(200));
        using var release = new ManualResetEventSlim();
        var running = queue.RunAsync(_ => release.Wait(TimeSpan.FromSeconds(30)), CancellationToken.None);
        var waiting = queue.RunAsync(_ => 1, CancellationToken.None); // queued behind it

        var full = await Assert.ThrowsAsync<ProblemException>(() => queue.RunAsync(_ => 2, CancellationToken.None));
        Assert.Equal((503, true), (full.StatusCode, full.RetryAfterSeconds > 0));
        var timedOut = await Assert.ThrowsAsync<ProblemException>(() => waiting);
        Assert.Equal(503, timedOut.StatusCode);

        release.Set();
        await running;
        Assert.Equal(3, await queue.RunAsync(_ => 3, CancellationToken.None));
        Assert.Equal(0, queue.Admitted);
    }
}
