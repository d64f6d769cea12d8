using System.Buffers;
using System.Runtime.InteropServices;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A file's bytes copied into native memory, as <see cref="Memory{T}"/>: what a served model's
/// weights are views of (<see cref="OnnxFile.Load"/>). A private copy, so changes to the file do
/// not reach it (unlike a mapping, <see cref="MappedFile"/>), in memory the native allocator has
/// usually faulted in already (the pages libtorch and ONNX Runtime freed), where parsing a 46 MB
/// model into fresh managed arrays faulted ~5k pages in and took ~0.1 s of CPU beside the import
/// check. As for a mapping, the memory lives as long as any memory taken from it is reachable
/// (each holds this object, which holds the block's handle); the handle's finalizer frees it after
/// that, and code that reads a span of it keeps the span's owner alive until done (<see cref="GC.KeepAlive"/>).
/// </summary>
internal sealed unsafe class NativeFileCopy : MemoryManager<byte>
{
    private readonly Block _block;
    private readonly byte* _start;
    private readonly int _length;

    private NativeFileCopy(int length)
    {
        _block = new Block(length);
        _start = (byte*)_block.DangerousGetHandle();
        _length = length;
    }

    /// <summary>Reads <paramref name="path"/> whole; null where it cannot be held (empty, or 2 GiB and over: protobuf's own limit).</summary>
    public static NativeFileCopy? Read(string path)
    {
        using var file = File.OpenHandle(path);
        var length = RandomAccess.GetLength(file);
        if (length is 0 or > int.MaxValue) return null;
        var copy = new NativeFileCopy((int)length);
        try
        {
            var span = copy.GetSpan();
            for (var read = 0; read < span.Length;)
            {
                var got = RandomAccess.Read(file, span[read..], read);
                if (got == 0) throw new IOException($"'{path}' ended early while it was read.");
                read += got;
            }
            return copy;
        }
        catch
        {
            ((IDisposable)copy).Dispose();
            throw;
        }
    }

    public override Span<byte> GetSpan() => new(_start, _length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(_start + elementIndex, pinnable: this);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _block.Dispose();
    }

    /// <summary>The native block, freed by its finalizer where nothing disposed it; the GC is told of its size.</summary>
    private sealed class Block : SafeHandle
    {
        private readonly long _size;

        public Block(int size) : base(IntPtr.Zero, ownsHandle: true)
        {
            SetHandle((IntPtr)NativeMemory.Alloc((nuint)size));
            _size = size;
            GC.AddMemoryPressure(size);
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMemory.Free((void*)handle);
            GC.RemoveMemoryPressure(_size);
            return true;
        }
    }
}
