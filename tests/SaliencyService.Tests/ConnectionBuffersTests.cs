using Microsoft.AspNetCore.Connections;
using SaliencyService.Api.Inputs;
using SaliencyService.Contracts;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>Kestrel's connection buffers (<see cref="ConnectionBuffers"/>): blocks of 64 KiB, reused, and uploads of many blocks arriving whole.</summary>
public sealed class ConnectionBuffersTests
{
    [Fact]
    public void Blocks_hold_at_least_what_is_asked_and_are_reused_once_returned()
    {
        using var pool = new ConnectionBuffers().Create(new MemoryPoolOptions());
        Assert.Equal(ConnectionBuffers.BlockSize, pool.MaxBufferSize);
        var first = pool.Rent(2048);
        Assert.Equal(ConnectionBuffers.BlockSize, first.Memory.Length);
        var second = pool.Rent();
        Assert.False(first.Memory.Span.Overlaps(second.Memory.Span));
        var array = System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(first.Memory, out var segment) ? segment.Array : null;
        first.Dispose();
        first.Dispose(); // twice: returned once
        Assert.Throws<ObjectDisposedException>(() => first.Memory);
        using var third = pool.Rent(ConnectionBuffers.BlockSize);
        using var fourth = pool.Rent(1);
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(third.Memory, out var reused));
        Assert.Same(array, reused.Array);
        Assert.False(third.Memory.Span.Overlaps(fourth.Memory.Span));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(ConnectionBuffers.BlockSize + 1));
        second.Dispose();
    }

    [Fact]
    public async Task A_tensor_of_many_blocks_arrives_whole_over_a_real_socket()
    {
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var process = await ServiceProcess.StartAsync(store);
            await Http.ImportFixtureAsync(process.Client, "seed_cnn");
            // 40 samples of 48 KiB, the four fixture inputs in turn: 1.9 MB, ~30 blocks, whose boundaries fall anywhere in a sample.
            var stems = Enumerable.Range(0, 40).Select(i => $"input{i % 4}").ToArray();
            var samples = stems.Select(s => Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", s + ".tensor.npy")), long.MaxValue)).ToArray();
            using var form = Http.TensorForm(Npy.Write(samples.SelectMany(s => s.Data).ToArray(), [stems.Length, .. samples[0].Shape[1..]]));
            var result = await Http.ReadAsync<PredictResponse>(await process.Client.PostAsync("/v1/models/seed_cnn/predict?topK=2", form));
            Assert.Equal(stems.Length, result.Predictions.Count);
            for (var i = 0; i < stems.Length; i++) PredictApiTests.AssertMatches(ReferenceCases.Get("seed_cnn", stems[i]), result.Predictions[i]);
        }
        finally
        {
            ServiceFactory.DeleteServiceFolder(store);
        }
    }
}
