using SaliencyService.Api.Models;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A process's staging folder under concurrent uploads: the first uploads after a start claim it
/// (its lock) at once. Two claims in one process used to open the lock twice, and the second open
/// failed ("being used by another process"): a 500 on one of two imports sent together to a
/// fresh replica.
/// </summary>
public sealed class StoreStagingTests : IDisposable
{
    private readonly string _store = ServiceFactory.NewStoreDirectory();

    public void Dispose()
    {
        if (Directory.Exists(_store)) Directory.Delete(_store, recursive: true);
    }

    [Fact]
    public async Task Uploads_that_start_together_on_a_fresh_process_each_get_a_staging_folder()
    {
        for (var round = 0; round < 20; round++)
        {
            using var layout = new StoreLayout(Path.Combine(_store, round.ToString()));
            layout.Recover();
            using var start = new Barrier(8);
            var folders = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
            {
                start.SignalAndWait();
                return layout.WithStagingAsync(staging =>
                {
                    Assert.True(Directory.Exists(staging));
                    return Task.FromResult(staging);
                });
            })));
            Assert.Equal(8, folders.Distinct().Count());
        }
    }

    [Fact]
    public async Task A_staging_folder_removed_under_a_live_process_is_claimed_again()
    {
        // Another replica's start-up recovery removes staging folders it finds unlocked; it can look
        // in the moment between this process creating its folder and locking it.
        using var layout = new StoreLayout(_store);
        layout.Recover();
        await layout.WithStagingAsync(staging => Task.FromResult(0));
        var own = Directory.EnumerateDirectories(layout.Staging).Single();
        Directory.Delete(own, recursive: true);

        await layout.WithStagingAsync(staging => Task.FromResult(0));
        Assert.True(File.Exists(Path.Combine(own, ".lock")));
        // Held: another process's probe (an exclusive open) fails while this one lives.
        Assert.ThrowsAny<IOException>(() => new FileStream(Path.Combine(own, ".lock"), FileMode.Open, FileAccess.ReadWrite, FileShare.None).Dispose());
    }
}
