using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;

namespace SaliencyService.Explain.Torch;

/// <summary>
/// Makes TorchSharp's native library load on hosts whose libstdc++ predates GCC 13
/// (Debian 12, Ubuntu 22.04: GLIBCXX_3.4.30).
///
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> needs exactly one symbol of GLIBCXX_3.4.32,
/// <c>std::ios_base_library_init()</c>, which GCC 13 emits in every file that includes
/// &lt;iostream&gt;. On an older host the dynamic loader refuses the library outright. The fix:
/// <list type="number">
/// <item>a copy of the library whose version requirement GLIBCXX_3.4.32 is marked weak
///   (<c>VER_FLG_WEAK</c> in <c>.gnu.version_r</c>), so the loader no longer refuses it;</item>
/// <item>a tiny shim library, compiled here with g++, that defines the missing function
///   (initialising the iostreams exactly as GCC 13's libstdc++ does) and is loaded with
///   RTLD_GLOBAL first, so the copy's reference binds to it;</item>
/// <item>TorchSharp's <c>DllImport("LibTorchSharp")</c> resolved to that copy.</item>
/// </list>
/// Nothing happens on hosts with a current libstdc++ (the Docker image): TorchSharp loads untouched.
/// </summary>
public static class TorchNativeLoader
{
    private const string MissingSymbol = "_ZSt21ios_base_library_initv"; // std::ios_base_library_init()
    private const string MissingVersion = "GLIBCXX_3.4.32";
    private const string LibraryFile = "libLibTorchSharp.so";
    private const string ShimSource = "#include <ios>\nnamespace std { void ios_base_library_init() { static ios_base::Init init; } }\n";

    private static readonly Lazy<string> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);
    private static string? _oneDnnSetting;
    private static int _threads;

    /// <summary>
    /// Sets what the first load applies: the oneDNN cap (<c>Saliency:Explain:OneDnnMaxIsa</c>, see
    /// <see cref="OneDnnGuard"/>) and libtorch's intra-op threads (0: <see cref="Environment.ProcessorCount"/>,
    /// which honours a container's CPU limit). Later calls, after the load, change nothing.
    /// </summary>
    public static void Configure(string? oneDnnMaxIsa, int threads)
    {
        _oneDnnSetting = oneDnnMaxIsa;
        _threads = threads;
    }

    /// <summary>What oneDNN was allowed in this process, once libtorch has loaded.</summary>
    public static OneDnnChoice? OneDnn { get; private set; }

    /// <summary>
    /// Ensures libtorch is usable; returns how it was loaded (for the start-up log).
    /// Throws <see cref="InvalidOperationException"/> with the reason when it cannot be.
    /// </summary>
    public static string EnsureLoaded() => Loaded.Value;

    private static string Load()
    {
        // The cap must be in the native environment before libtorch (and so oneDNN) loads.
        OneDnn = OperatingSystem.IsLinux() ? OneDnnGuard.Choose(_oneDnnSetting, Path.Combine(NativeDirectory(), "libtorch_cpu.so")) : null;
        var how = LoadLibraries();
        LibTorchContext.Configure(mkldnn: OneDnn?.Disabled != true, _threads > 0 ? _threads : Environment.ProcessorCount);
        var oneDnn = OneDnn is null ? "" : $"; oneDNN: {(OneDnn.Disabled ? "off" : OneDnn.MaxIsa == OneDnnGuard.Default ? "uncapped" : "capped at " + OneDnn.MaxIsa)} ({OneDnn.Reason})";
        return $"{how}; {torch.get_num_threads()} libtorch thread(s){oneDnn}";
    }

    private static string LoadLibraries()
    {
        if (!OperatingSystem.IsLinux() || HostHasSymbol())
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            return "TorchSharp loaded as shipped";
        }

        var original = FindNativeLibrary();
        var cache = Path.Combine(Path.GetTempPath(), "saliency-torchsharp-compat", Hash(original)[..16]);
        string shim, patched;
        try
        {
            Directory.CreateDirectory(cache);
            shim = EnsureFile(Path.Combine(cache, "libiosinit.so"), target => CompileShim(cache, target));
            patched = EnsureFile(Path.Combine(cache, LibraryFile), target => WritePatchedCopy(original, target));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only root file system without a writable /tmp: the service predicts, and says why it cannot explain.
            throw new InvalidOperationException($"This host's libstdc++ lacks {MissingVersion}, and the compatibility shim cannot be written to {cache} " +
                $"({e.Message}). Give the service a writable temp folder (TMPDIR, or an emptyDir at /tmp where the root file system is read-only).", e);
        }

        // The copy lives outside the package folder, so its $ORIGIN runpath no longer finds
        // libtorch: load libtorch first from where it is, so the copy's needs bind by soname.
        var nativeDirectory = Path.GetDirectoryName(original)!;
        foreach (var dependency in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
        {
            var path = Path.Combine(nativeDirectory, dependency);
            if (File.Exists(path)) NativeLibrary.Load(path);
        }
        if (dlopen(shim, RtldNow | RtldGlobal) == IntPtr.Zero)
            throw new InvalidOperationException($"Cannot load {shim}: {Marshal.PtrToStringAnsi(dlerror())}");
        var handle = NativeLibrary.Load(patched);
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly,
            (name, _, _) => name == "LibTorchSharp" ? handle : IntPtr.Zero);

        torch.InitializeDeviceType(DeviceType.CPU);
        return $"TorchSharp loaded through the libstdc++ compatibility shim in {cache}";
    }

    /// <summary>The folder of TorchSharp's and libtorch's native libraries.</summary>
    internal static string NativeDirectory() => Path.GetDirectoryName(FindNativeLibrary())!;

    private static bool HostHasSymbol() =>
        NativeLibrary.TryLoad("libstdc++.so.6", out var handle) && NativeLibrary.TryGetExport(handle, MissingSymbol, out _);

    private static string FindNativeLibrary()
    {
        string[] candidates =
        [
            Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", LibraryFile),
            Path.Combine(AppContext.BaseDirectory, LibraryFile),
            Path.Combine(Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "", "..", "..", "runtimes", "linux-x64", "native", LibraryFile),
        ];
        return candidates.Select(Path.GetFullPath).FirstOrDefault(File.Exists)
               ?? throw new InvalidOperationException($"{LibraryFile} is not beside the application; is the TorchSharp package referenced?");
    }

    /// <summary>Creates <paramref name="path"/> once, atomically (several processes may race here).</summary>
    internal static string EnsureFile(string path, Action<string> create)
    {
        if (File.Exists(path)) return path;
        var temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            create(temporary);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
        return path;
    }

    private static void CompileShim(string directory, string output)
    {
        var source = Path.Combine(directory, $"iosinit.{Guid.NewGuid():N}.cpp");
        File.WriteAllText(source, ShimSource);
        try
        {
            var start = new ProcessStartInfo("g++", ["-shared", "-fPIC", "-O2", "-o", output, source])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            using var compiler = Process.Start(start)
                                 ?? throw new InvalidOperationException("g++ could not be started.");
            var errors = compiler.StandardError.ReadToEnd();
            compiler.WaitForExit();
            if (compiler.ExitCode != 0) throw new InvalidOperationException("g++ failed to build the libstdc++ shim: " + errors);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"This host's libstdc++ lacks {MissingVersion}, which TorchSharp needs, and g++ is not installed to build the " +
                "compatibility shim. Install g++ (apt-get install g++) or a libstdc++ from GCC 13 or newer.", e);
        }
        finally
        {
            File.Delete(source);
        }
    }

    /// <summary>Copies the ELF file, setting VER_FLG_WEAK on its GLIBCXX_3.4.32 requirement.</summary>
    private static void WritePatchedCopy(string original, string output)
    {
        var elf = File.ReadAllBytes(original);
        if (!MarkVersionWeak(elf, MissingVersion))
            throw new InvalidOperationException($"{original} does not require {MissingVersion} as expected; cannot patch it.");
        File.WriteAllBytes(output, elf);
    }

    /// <summary>
    /// Walks the ELF64 section headers to <c>SHT_GNU_verneed</c> and flags the named version weak.
    /// Layouts: Elf64_Shdr (64 bytes), Elf64_Verneed (16), Elf64_Vernaux (16).
    /// </summary>
    internal static bool MarkVersionWeak(byte[] elf, string version)
    {
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlagWeak = 0x2;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != 'E' || elf[2] != 'L' || elf[3] != 'F' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidOperationException("Not a little-endian ELF64 file.");

        var span = elf.AsSpan();
        var sectionTable = (int)BinaryPrimitives.ReadUInt64LittleEndian(span[0x28..]);
        var sectionSize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        var sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);
        int Section(int index) => sectionTable + index * sectionSize;

        for (var s = 0; s < sectionCount; s++)
        {
            var header = span[Section(s)..];
            if (BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) != ShtGnuVerneed) continue;
            var offset = (int)BinaryPrimitives.ReadUInt64LittleEndian(header[0x18..]);
            var entries = (int)BinaryPrimitives.ReadUInt32LittleEndian(header[0x2C..]); // sh_info = number of Verneed
            var strings = span[(int)BinaryPrimitives.ReadUInt64LittleEndian(span[(Section((int)BinaryPrimitives.ReadUInt32LittleEndian(header[0x28..])) + 0x18)..])..];

            var need = offset;
            for (var n = 0; n < entries; n++)
            {
                var count = BinaryPrimitives.ReadUInt16LittleEndian(span[(need + 2)..]);
                var aux = need + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 8)..]);
                for (var a = 0; a < count; a++)
                {
                    var name = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 8)..]);
                    var end = strings[name..].IndexOf((byte)0);
                    if (System.Text.Encoding.ASCII.GetString(strings.Slice(name, end)) == version)
                    {
                        var flags = BinaryPrimitives.ReadUInt16LittleEndian(span[(aux + 4)..]);
                        BinaryPrimitives.WriteUInt16LittleEndian(span[(aux + 4)..], (ushort)(flags | VerFlagWeak));
                        return true;
                    }
                    aux += (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 12)..]);
                }
                need += (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 12)..]);
            }
        }
        return false;
    }

    private static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;

    [DllImport("libdl.so.2", EntryPoint = "dlopen")]
    private static extern IntPtr dlopen(string fileName, int flags);

    [DllImport("libdl.so.2", EntryPoint = "dlerror")]
    private static extern IntPtr dlerror();
}
