using Grpc.Core;
using SaliencyService.Api.Errors;
using SaliencyService.Api.OpenInference;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// A write that finds the disk full (an upload into the store's staging folder, its manifest) is
/// the host's failure, not the client's: 507 Insufficient Storage on /v1 and /v2, gRPC's
/// RESOURCE_EXHAUSTED, logged, the server's paths kept out of the answer. The failure is a real
/// one: Linux's /dev/full answers every write with ENOSPC.
/// </summary>
public sealed class DiskFullTests
{
    [Fact]
    public async Task A_write_to_a_full_disk_is_insufficient_storage_without_its_path()
    {
        var e = await Assert.ThrowsAsync<IOException>(async () =>
        {
            // As the upload's copy writes: unbuffered, asynchronous.
            await using var full = new FileStream("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0, useAsync: true);
            await full.WriteAsync(new byte[4096]);
        });

        Assert.True(Problems.DiskFull(e), $"HResult {e.HResult}: {e.Message}");
        var problem = Problems.Describe(e);
        Assert.Equal(507, problem.Status);
        Assert.Equal("Insufficient storage", problem.Title);
        Assert.DoesNotContain("/dev/full", problem.Detail);
        Assert.False(problem.Expected); // logged for the operator
        Assert.Equal(StatusCode.ResourceExhausted, GrpcErrorInterceptor.Code(problem.Status));
    }

    [Fact]
    public void Other_write_failures_stay_internal_errors()
    {
        var missing = Assert.Throws<DirectoryNotFoundException>(() => File.WriteAllBytes($"/nonexistent-{Guid.NewGuid():N}/x", [1]));
        Assert.False(Problems.DiskFull(missing));
        Assert.Equal(500, Problems.Describe(missing).Status);
        Assert.Equal(500, Problems.Describe(new IOException("disk on fire")).Status);
    }
}
