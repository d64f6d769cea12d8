using System.IO.MemoryMappedFiles;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A file's bytes, mapped read-only (<see cref="NativeBytes"/>): for a process that holds a model
/// briefly, or for a file only this process writes (<see cref="WeightsFile"/>), as a file rewritten
/// in place under a mapping kills the process that maps it (SIGBUS). The view's handle unmaps it.
/// </summary>
internal sealed unsafe class MappedFile : NativeBytes
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    private MappedFile(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, int length) : base(Start(view), length)
    {
        Path = path;
        _file = file;
        _view = view;
    }

    // Not AcquirePointer: its reference would keep the handle's finalizer from ever unmapping.
    private static byte* Start(MemoryMappedViewAccessor view) => (byte*)view.SafeMemoryMappedViewHandle.DangerousGetHandle() + view.PointerOffset;

    /// <summary>Maps <paramref name="path"/>; null where it cannot be held (<see cref="NativeBytes.Holdable"/>).</summary>
    public static MappedFile? Open(string path)
    {
        var length = new FileInfo(path).Length;
        return Holdable(length) ? Map(path, MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read), length) : null;
    }

    /// <summary>Maps the whole of an open file, whose handle stays the caller's; null where it cannot be held.</summary>
    public static MappedFile? Open(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        var length = RandomAccess.GetLength(handle);
        return Holdable(length)
            ? Map(path, MemoryMappedFile.CreateFromFile(handle, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true), length)
            : null;
    }

    private static MappedFile Map(string path, MemoryMappedFile file, long length)
    {
        try
        {
            return new MappedFile(System.IO.Path.GetFullPath(path), file, file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read), (int)length);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The file mapped (full path).</summary>
    public string Path { get; }

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        _view.Dispose();
        _file.Dispose();
    }
}
