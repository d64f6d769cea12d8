using Microsoft.AspNetCore.Http;
using SaliencyService.Api.Observability;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>The pause in serving that the next import's spare child waits for.</summary>
public sealed class ServingActivityTests
{
    [Fact]
    public async Task A_pause_begins_only_once_the_work_in_flight_has_ended_and_lasts_its_length()
    {
        var serving = new ServingActivity();
        var release = new TaskCompletionSource();
        var request = serving.TrackAsync(Request(HttpMethods.Post), () => release.Task);
        var quiet = TimeSpan.FromMilliseconds(100);

        var pause = serving.PauseAsync(quiet, TimeSpan.FromMinutes(10));
        await Task.Delay(4 * quiet);
        Assert.False(pause.IsCompleted, "a pause while a prediction runs");

        var ended = System.Diagnostics.Stopwatch.GetTimestamp();
        release.SetResult();
        await request;
        await pause.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(System.Diagnostics.Stopwatch.GetElapsedTime(ended) >= quiet, "the pause ended before its length had passed");
    }

    [Fact]
    public async Task Reads_and_probes_are_not_work()
    {
        var serving = new ServingActivity();
        var release = new TaskCompletionSource();
        var probe = serving.TrackAsync(Request(HttpMethods.Get), () => release.Task);

        await serving.PauseAsync(TimeSpan.FromMilliseconds(50), TimeSpan.FromMinutes(10)).WaitAsync(TimeSpan.FromSeconds(30));
        release.SetResult();
        await probe;
    }

    [Fact]
    public async Task Unbroken_work_holds_the_pause_back_only_so_long()
    {
        var serving = new ServingActivity();
        var release = new TaskCompletionSource();
        var request = serving.TrackAsync(Request(HttpMethods.Post), () => release.Task);

        await serving.PauseAsync(TimeSpan.FromMinutes(10), TimeSpan.FromMilliseconds(200)).WaitAsync(TimeSpan.FromSeconds(30));
        release.SetResult();
        await request;
    }

    private static DefaultHttpContext Request(string method) => new() { Request = { Method = method } };
}
