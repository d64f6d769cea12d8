using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A file's bytes, mapped read-only, as <see cref="Memory{T}"/>: what a model's weights are wrapped
/// in instead of copied (<see cref="OnnxFile"/>). The mapping lives as long as any memory taken
/// from it is reachable (each holds this object, which holds the view's handle); the runtime's
/// finalizer of that handle unmaps it after that. So nothing disposes it while a tensor may still
/// point into it; code that reads a span of it keeps the span's owner alive until done
/// (<see cref="GC.KeepAlive"/>), as a span alone does not.
/// </summary>
internal sealed unsafe class MappedFile : MemoryManager<byte>
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _start;
    private readonly int _length;

    private MappedFile(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, int length)
    {
        Path = path;
        _file = file;
        _view = view;
        _length = length;
        // Not AcquirePointer: its reference would keep the handle's finalizer from ever unmapping.
        _start = (byte*)view.SafeMemoryMappedViewHandle.DangerousGetHandle() + view.PointerOffset;
    }

    /// <summary>Maps <paramref name="path"/>; null where it cannot be (empty, or 2 GiB and over: protobuf's own limit).</summary>
    public static MappedFile? Open(string path)
    {
        var length = new FileInfo(path).Length;
        if (length is 0 or > int.MaxValue) return null;
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
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

    public override Span<byte> GetSpan() => new(_start, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_start + elementIndex, pinnable: this);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        _view.Dispose();
        _file.Dispose();
    }
}
