using System.Buffers;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A file's bytes at a fixed native address, as <see cref="Memory{T}"/>: what a model's weights
/// are views of instead of managed copies (<see cref="OnnxFile"/>), mapped (<see cref="MappedFile"/>)
/// or copied (<see cref="NativeFileCopy"/>). The bytes live as long as any memory taken from them
/// is reachable (each holds this object, which holds the handle that frees them); that handle's
/// finalizer frees them after that. So nothing disposes them while a tensor may still point into
/// them; code that reads a span of them keeps the span's owner alive until done
/// (<see cref="GC.KeepAlive"/>), as a span alone does not.
/// </summary>
internal abstract unsafe class NativeBytes : MemoryManager<byte>
{
    private readonly byte* _start;
    private readonly int _length;

    protected NativeBytes(byte* start, int length)
    {
        _start = start;
        _length = length;
    }

    /// <summary>Whether a file of <paramref name="length"/> bytes can be held: not empty, and under 2 GiB (protobuf's own limit).</summary>
    protected static bool Holdable(long length) => length is > 0 and <= int.MaxValue;

    public sealed override Span<byte> GetSpan() => new(_start, _length);

    public sealed override MemoryHandle Pin(int elementIndex = 0) => new(_start + elementIndex, pinnable: this);

    public sealed override void Unpin()
    {
    }
}
