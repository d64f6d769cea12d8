using System.Runtime.InteropServices;
using SaliencyService.Explain.Torch;
using Xunit;

namespace SaliencyService.Tests;

public sealed class NativeHeapTests
{
    [Fact]
    public void The_allocator_serving_the_process_is_recognised_and_trims()
    {
        Assert.True(OperatingSystem.IsLinux(), "the service's native heap tuning targets Linux");
        // As the container image runs it (tcmalloc preloaded), or plain glibc, whose mallopt must accept the tuning.
        var preloaded = Environment.GetEnvironmentVariable("LD_PRELOAD")?.Contains("libtcmalloc") == true;
        Assert.StartsWith(preloaded ? "native heap: tcmalloc" : "native heap: glibc malloc", NativeHeap.Configure());

        // A tensor-sized block freed and allocated again, then a trim: both must leave the heap usable.
        Marshal.FreeHGlobal(Marshal.AllocHGlobal(16 << 20));
        NativeHeap.Trim();
        var again = Marshal.AllocHGlobal(16 << 20);
        Assert.NotEqual(IntPtr.Zero, again);
        Marshal.FreeHGlobal(again);
    }
}
