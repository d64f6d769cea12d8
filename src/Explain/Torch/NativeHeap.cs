using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace SaliencyService.Explain.Torch;

/// <summary>
/// The native heap under libtorch. Every activation and gradient of a mirror pass is malloc'ed and
/// freed again when the pass ends; what the allocator does with those frees decides whether the
/// next pass reuses warm pages or faults fresh zeroed ones in from the kernel. glibc's defaults
/// hand every block over 128 KiB (growing to at most 32 MiB) straight back to the kernel, so a
/// batched pass whose activations are tens of megabytes each page-faults all of them every time —
/// measured: 3.6 million page faults for four integrated-gradients requests on mobilenet_v2.
/// <list type="bullet">
/// <item>tcmalloc, when the process runs with it preloaded (the container image does), keeps freed
///   pages for reuse: 0.66 million faults for the same work, integrated gradients ~45% faster;</item>
/// <item>under glibc, <see cref="Configure"/> keeps blocks up to glibc's 32 MiB limit in the heap
///   and freed memory at its top, which recovers part of that.</item>
/// </list>
/// Either way the free memory goes back to the system once batched work pauses
/// (<see cref="TrimWhenIdle"/>), so RSS does not stay at the largest batch ever run, while
/// back-to-back batched requests keep reusing their pages (SmoothGrad on mobilenet_v2 with
/// tcmalloc, against glibc: 0.46–0.71× the time with pages kept between requests, 0.90× when
/// trimmed after each one).
/// </summary>
public static class NativeHeap
{
    // mallopt parameters (malloc.h).
    private const int TrimThreshold = -1, TopPad = -2, MmapThreshold = -3, ArenaMax = -8;
    private const int GlibcMaxMmapThreshold = 32 << 20;

    private static readonly Lazy<Allocator> Current = new(Detect, LazyThreadSafetyMode.ExecutionAndPublication);
    private static Action? _tcmallocRelease; // MallocExtension_ReleaseFreeMemory, when tcmalloc serves malloc

    private enum Allocator { Other, Glibc, Tcmalloc }

    /// <summary>Tunes glibc's heap for tensor-sized blocks (tcmalloc needs nothing); says which allocator serves libtorch.</summary>
    public static string Configure() => Current.Value switch
    {
        Allocator.Tcmalloc => "native heap: tcmalloc",
        Allocator.Glibc => "native heap: glibc malloc, blocks up to 32 MiB kept for reuse (preload tcmalloc for faster batched methods)",
        _ => "native heap: the platform's",
    };

    /// <summary>The glibc arenas a process keeps (<c>MALLOC_ARENA_MAX</c>, as the container image sets it).</summary>
    public const int Arenas = 2;

    /// <summary>
    /// Caps glibc's malloc at <see cref="Arenas"/> arenas where <c>MALLOC_ARENA_MAX</c> does not say
    /// otherwise; call first thing, before the threads that allocate start. glibc gives threads
    /// that contend arenas of their own (up to eight per core), and what one arena frees another
    /// does not reuse: RSS under load roughly doubles, and the heap a process faults in ahead of
    /// its work (<see cref="Reserve"/>) serves only the thread that faulted it. Nothing under tcmalloc.
    /// </summary>
    public static void LimitArenas()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_ARENA_MAX") is not null) return;
        try
        {
            mallopt(ArenaMax, Arenas);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc.
        }
    }

    private static readonly Timer IdleTrim = new(_ => Trim());

    /// <summary>
    /// How long batched work's freed memory (integrated gradients, SmoothGrad, an import's probe
    /// passes) is kept for the next such request. Faulting it in again costs 3–11 µs a page on a
    /// virtual machine: 1.2–4.3 s for the 1.6 GB of integrated gradients on mobilenet_v2, which
    /// took 0.9–1.0 s with its pages kept. A minute spans a user's pauses between maps.
    /// </summary>
    public static readonly TimeSpan KeptAfterBatches = TimeSpan.FromMinutes(1);

    /// <summary>Trims once no call has come for <paramref name="idle"/> (each call restarts the wait).</summary>
    public static void TrimWhenIdle(TimeSpan idle) => IdleTrim.Change(idle, Timeout.InfiniteTimeSpan);

    /// <summary>Trims once batched work has paused for <see cref="KeptAfterBatches"/>.</summary>
    public static void TrimWhenBatchesPause() => TrimWhenIdle(KeptAfterBatches);

    /// <summary>What owners outside the heap keep for batched work, each handed back by the next trim.</summary>
    private static readonly ConcurrentDictionary<object, Action> Releases = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// As above, the trim first calling <paramref name="release"/>: <paramref name="owner"/>'s own
    /// memory for batched work (ONNX Runtime's session arenas), which goes back to the heap, and
    /// with the trim to the system. One call per owner is kept: the latest.
    /// </summary>
    public static void TrimWhenBatchesPause(object owner, Action release)
    {
        Releases[owner] = release;
        TrimWhenBatchesPause();
    }

    /// <summary>Drops <paramref name="owner"/>'s release (it is disposed: nothing left to hand back).</summary>
    public static void Forget(object owner) => Releases.TryRemove(owner, out _);

    /// <summary>
    /// Faults <paramref name="bytes"/> of heap pages in and frees them again, so that the next
    /// allocations reuse resident pages instead of faulting fresh zeroed ones in (~3 µs each on a
    /// virtual machine). A spare child does it while it waits for work: its import check of
    /// resnet18 then faulted ~85k pages instead of ~210k (bench/analysis.md). Cancels a pending
    /// idle trim, which would hand them back.
    /// </summary>
    /// <param name="stop">Asked between blocks (work has come): then it stops, keeping what was faulted in so far.</param>
    public static unsafe void Reserve(long bytes, Func<bool>? stop = null)
    {
        _ = Current.Value; // glibc tuned first, so that it keeps what is freed below
        IdleTrim.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        const int block = 16 << 20; // under glibc's mmap limit: kept in its heap, as in tcmalloc's
        var blocks = new List<IntPtr>();
        try
        {
            for (long reserved = 0; reserved < bytes && stop?.Invoke() != true; reserved += block)
            {
                var start = (byte*)NativeMemory.Alloc(block);
                blocks.Add((IntPtr)start);
                for (var offset = 0; offset < block; offset += Environment.SystemPageSize) start[offset] = 0;
            }
        }
        catch (OutOfMemoryException)
        {
            // Only a head start (a memory limit refused more): the work allocates what it needs itself.
        }
        finally
        {
            foreach (var start in blocks) NativeMemory.Free((void*)start);
        }
    }

    /// <summary>
    /// <see cref="Reserve"/> on a thread of its own at the lowest CPU priority (nice 19: serving goes
    /// first), the pages then left to the idle trim. The service does it at start-up, so that its
    /// first import finds resident pages as the spare child's check does (resnet18's, on the
    /// service's side: ~35k page faults instead of ~78k); a minute after, unused, they go back.
    /// Other threads take the pages where the allocator shares freed memory between threads:
    /// tcmalloc (the container image's), or glibc with few arenas (<c>MALLOC_ARENA_MAX=2</c>, the
    /// image's too). Plain glibc keeps them in this thread's arena, for whichever thread takes it next.
    /// </summary>
    /// <param name="stop">Asked between blocks, on the reserving thread: an import has begun, and its own work goes first.</param>
    /// <returns>The reserving thread; null for nothing to reserve.</returns>
    public static Thread? ReserveInBackground(long bytes, Func<bool> stop)
    {
        if (bytes <= 0) return null;
        var thread = new Thread(() =>
        {
            LowerThreadPriority();
            Reserve(bytes, stop);
            TrimWhenBatchesPause();
        }) { IsBackground = true, Name = "Native heap reserve" };
        thread.Start();
        return thread;
    }

    /// <summary>Nice 19 for the calling thread (Linux gives each thread its own); a thread that ends, as raising it again needs privilege.</summary>
    private static void LowerThreadPriority()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            setpriority(PrioProcess, gettid(), 19);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // A libc without gettid: the reserve runs at the service's priority.
        }
    }

    /// <summary>Gives the heap's free memory back to the system, after the owners' releases (<see cref="TrimWhenBatchesPause(object, Action)"/>).</summary>
    public static void Trim()
    {
        foreach (var owner in Releases.Keys)
        {
            if (!Releases.TryRemove(owner, out var release)) continue;
            try
            {
                release();
            }
            catch (Exception)
            {
                // The trim runs on a timer, where an exception would end the process: what failed to be handed back stays until the owner goes.
            }
        }
        switch (Current.Value)
        {
            case Allocator.Tcmalloc:
                _tcmallocRelease!();
                break;
            case Allocator.Glibc:
                try
                {
                    malloc_trim(0);
                }
                catch (EntryPointNotFoundException)
                {
                    // A libc with mallopt but without malloc_trim: nothing to trim this way.
                }
                break;
        }
    }

    private static Allocator Detect()
    {
        if (!OperatingSystem.IsLinux()) return Allocator.Other;
        // A preloaded tcmalloc exports its extension API into the global scope.
        if (NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), "MallocExtension_ReleaseFreeMemory", out var release))
        {
            _tcmallocRelease = Marshal.GetDelegateForFunctionPointer<VoidFunction>(release).Invoke;
            return Allocator.Tcmalloc;
        }
        try
        {
            // mallopt returns 1 when glibc accepts the value.
            var tuned = mallopt(MmapThreshold, GlibcMaxMmapThreshold) == 1;
            tuned &= mallopt(TrimThreshold, 1 << 30) == 1;
            tuned &= mallopt(TopPad, 64 << 20) == 1;
            return tuned ? Allocator.Glibc : Allocator.Other;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return Allocator.Other; // not glibc (musl)
        }
    }

    private delegate void VoidFunction();

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int parameter, int value);

    private const int PrioProcess = 0; // with a thread id: that thread alone

    [DllImport("libc", EntryPoint = "setpriority")]
    private static extern int setpriority(int which, int who, int priority);

    [DllImport("libc", EntryPoint = "gettid")]
    private static extern int gettid();

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);
}
