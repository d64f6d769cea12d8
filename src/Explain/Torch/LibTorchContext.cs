using System.Runtime.InteropServices;
using TorchSharp;

namespace SaliencyService.Explain.Torch;

/// <summary>
/// libtorch's global switches that TorchSharp does not expose, set through libtorch's own exports
/// (<c>at::globalContext()</c>): oneDNN on or off, and NNPACK always off — on CPUs it does not
/// know it only prints "Unsupported hardware" warnings, and oneDNN or libtorch's own kernels serve.
/// </summary>
internal static class LibTorchContext
{
    private const string Library = "libtorch_cpu.so";

    static LibTorchContext()
    {
        if (OperatingSystem.IsLinux()) NativeLibrary.SetDllImportResolver(typeof(LibTorchContext).Assembly, Resolve);
    }

    public static void Configure(bool mkldnn, int threads)
    {
        if (OperatingSystem.IsLinux())
        {
            var context = GlobalContext();
            SetMkldnn(context, mkldnn);
            SetNnpack(context, false);
        }
        torch.set_num_threads(threads);
    }

    /// <summary>Whether libtorch's oneDNN kernels are on.</summary>
    public static bool MkldnnEnabled => !OperatingSystem.IsLinux() || UserEnabledMkldnn(GlobalContext());

    private static IntPtr Resolve(string name, System.Reflection.Assembly assembly, DllImportSearchPath? path) =>
        name == Library ? NativeLibrary.Load(Path.Combine(TorchNativeLoader.NativeDirectory(), Library)) : IntPtr.Zero;

    [DllImport(Library, EntryPoint = "_ZN2at13globalContextEv")]
    private static extern IntPtr GlobalContext();

    [DllImport(Library, EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
    private static extern void SetMkldnn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [DllImport(Library, EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static extern void SetNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [DllImport(Library, EntryPoint = "_ZNK2at7Context17userEnabledMkldnnEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool UserEnabledMkldnn(IntPtr context);
}
