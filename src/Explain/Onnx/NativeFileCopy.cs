using System.Runtime.InteropServices;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A file's bytes copied into native memory (<see cref="NativeBytes"/>): what a served model's
/// weights are views of (<see cref="OnnxFile.Load"/>). A private copy, so changes to the file do
/// not reach it (unlike a mapping, <see cref="MappedFile"/>), in memory the native allocator has
/// usually faulted in already (the pages libtorch and ONNX Runtime freed), where parsing a 46 MB
/// model into fresh managed arrays faulted ~5k pages in and took ~0.1 s of CPU beside the import
/// check. The block's handle frees it.
/// </summary>
internal sealed unsafe class NativeFileCopy : NativeBytes
{
    private readonly Block _block;

    private NativeFileCopy(Block block, int length) : base((byte*)block.DangerousGetHandle(), length) => _block = block;

    /// <summary>Reads <paramref name="path"/> whole; null where it cannot be held (<see cref="NativeBytes.Holdable"/>).</summary>
    public static NativeFileCopy? Read(string path)
    {
        using var file = File.OpenHandle(path);
        var length = RandomAccess.GetLength(file);
        if (!Holdable(length)) return null;
        var copy = new NativeFileCopy(new Block((int)length), (int)length);
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
