using Google.Protobuf;
using Microsoft.Win32.SafeHandles;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A parsed model's weights moved into a private file, each at a page-aligned offset, and mapped
/// read-only: the model's initializers become views of the mapping, so every session written
/// from the model refers ONNX Runtime to the file instead of carrying its own copy
/// (<see cref="OrtModelBytes"/>), and the weights can be handed to those sessions as one shared
/// set (<see cref="Serving.SharedWeights"/>). The file is this process's alone: it holds a shared
/// lock on it while the mapping is used, and a later process deletes files that no one holds
/// (a process that ended without deleting its own).
/// </summary>
public sealed class WeightsFile : IDisposable
{
    /// <summary>The page size the offsets are aligned to: ONNX Runtime's kernels read the weights in place.</summary>
    private const int Alignment = 4096;

    private const string Pattern = "weights-*.bin";

    private readonly SafeFileHandle _lock;

    private WeightsFile(string path, SafeFileHandle handle, MappedFile bytes) => (Path, _lock, Bytes) = (path, handle, bytes);

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The mapping the model's initializers are views of.</summary>
    internal MappedFile Bytes { get; }

    /// <summary>
    /// Moves <paramref name="model"/>'s initializers of at least <see cref="OrtModelBytes.InlineBelowBytes"/>
    /// bytes into a new file in <paramref name="folder"/>; null where there are none, or they do
    /// not fit one mapping (2 GiB).
    /// </summary>
    public static WeightsFile? Move(ModelProto model, string folder)
    {
        var moved = model.Graph.Initializer.Where(t => t.RawData.Length >= OrtModelBytes.InlineBelowBytes).ToList();
        if (moved.Count == 0) return null;
        var offsets = new long[moved.Count];
        long end = 0;
        for (var i = 0; i < moved.Count; i++)
        {
            offsets[i] = (end + Alignment - 1) / Alignment * Alignment;
            end = offsets[i] + moved[i].RawData.Length;
        }
        if (end > int.MaxValue) return null;

        Directory.CreateDirectory(folder);
        RemoveStale(folder);
        var path = System.IO.Path.Combine(folder, Pattern.Replace("*", Guid.NewGuid().ToString("N")));
        // FileShare.Read takes a shared lock (flock), which RemoveStale's exclusive one is refused while it is held.
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
        try
        {
            for (var i = 0; i < moved.Count; i++) RandomAccess.Write(handle, moved[i].RawData.Span, offsets[i]);
            var bytes = MappedFile.Open(path, handle)!;
            for (var i = 0; i < moved.Count; i++)
                moved[i].RawData = UnsafeByteOperations.UnsafeWrap(bytes.Memory.Slice((int)offsets[i], moved[i].RawData.Length));
            // The small ones copied out too, so that nothing holds the parse's copy of the file (OnnxFile.Load) any longer.
            foreach (var tensor in model.Graph.Initializer.Where(t => t.RawData.Length is > 0 and < OrtModelBytes.InlineBelowBytes))
                tensor.RawData = ByteString.CopyFrom(tensor.RawData.Span);
            return new WeightsFile(path, handle, bytes);
        }
        catch
        {
            handle.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Deletes the file and lets its lock go. The mapping stays while the model's initializers are
    /// reachable; sessions made before this read their weights from it, and new ones cannot.
    /// </summary>
    public void Dispose()
    {
        File.Delete(Path);
        _lock.Dispose();
    }

    /// <summary>Deletes the weights files in <paramref name="folder"/> that no process holds.</summary>
    private static void RemoveStale(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder, Pattern))
        {
            try
            {
                using (File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.None)) { }
                File.Delete(file);
            }
            catch (IOException)
            {
                // Held (a live process's, this one's too), or gone already.
            }
            catch (UnauthorizedAccessException)
            {
                // Another user's.
            }
        }
    }
}
