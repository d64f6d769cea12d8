using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Explain;
using SaliencyService.Explain.Engine;
using Xunit;

namespace SaliencyService.Tests;

public sealed class ExplainQueueTests
{
    [Fact]
    public async Task A_full_queue_answers_503_with_retry_after_and_frees_its_slot_afterwards()
    {
        using var queue = new ExplainQueue(Options.Create(new SaliencyOptions { Explain = new ExplainOptions { MaxConcurrent = 1, QueueTimeoutSeconds = 0 } }));
        using var release = new ManualResetEventSlim();
        var running = queue.RunAsync(() => release.Wait(TimeSpan.FromSeconds(30)), CancellationToken.None);

        var busy = await Assert.ThrowsAsync<ProblemException>(() => queue.RunAsync(() => 1, CancellationToken.None));
        Assert.Equal(503, busy.StatusCode);
        Assert.NotNull(busy.RetryAfterSeconds);

        release.Set();
        await running;
        Assert.Equal(2, await queue.RunAsync(() => 2, CancellationToken.None));
    }
}
