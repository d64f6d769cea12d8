using System.Runtime.InteropServices;

namespace SaliencyService.Explain.Torch;

/// <summary>
/// Gives glibc's free heap memory back to the system. A batched explanation (integrated
/// gradients, SmoothGrad) briefly needs hundreds of megabytes of activations; libtorch frees them,
/// but glibc keeps the freed pages in its heap, so without a trim the process's RSS stays at the
/// largest batch it ever ran (measured on ResNet18 after six IG/SmoothGrad requests: 991 MiB
/// untrimmed, 502 MiB trimmed). The price: the next large batch faults its pages in again.
/// </summary>
public static class NativeHeap
{
    private static readonly bool Available = OperatingSystem.IsLinux();

    public static void Trim()
    {
        if (!Available) return;
        try
        {
            malloc_trim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (musl): nothing to trim this way.
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);
}
