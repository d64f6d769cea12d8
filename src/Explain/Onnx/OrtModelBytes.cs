using System.Runtime.InteropServices;
using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// A model the service wrote (a recording forward, a backward, the two merged) as ONNX Runtime
/// reads it from memory. Weights that are views of a mapped model file (<see cref="OnnxFile.Map"/>)
/// go as external-data references into that file instead of inside the bytes: serialising a merged
/// resnet18 copied its 44 MB of weights into a fresh array (0.14–0.19 s, most of it page faults)
/// that ONNX Runtime then copied again.
/// </summary>
public static class OrtModelBytes
{
    /// <summary>ONNX Runtime's session option for the folder external data is read from when the model comes from memory.</summary>
    public const string ExternalDataFolder = "session.model_external_initializers_file_folder_path";

    /// <returns>The bytes, and the folder their external references point into (null: none do).</returns>
    public static (byte[] Bytes, string? Folder) Of(ModelProto model)
    {
        if (!model.Graph.Initializer.Any(t => FileOf(t) is not null)) return (model.ToByteArray(), null);
        var referring = model.Clone(); // the weights' bytes are shared, not copied
        var initializers = referring.Graph.Initializer;
        string? folder = null;
        for (var i = 0; i < initializers.Count; i++)
        {
            if (FileOf(initializers[i]) is not var (file, offset, length) || length < InlineBelowBytes) continue;
            var directory = Path.GetDirectoryName(file)!;
            folder ??= directory;
            if (directory != folder) continue; // one folder a session: the rest stay in the bytes
            var reference = initializers[i].Clone();
            reference.RawData = ByteString.Empty;
            reference.DataLocation = TensorProto.Types.DataLocation.External;
            reference.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = Path.GetFileName(file) });
            reference.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            reference.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            initializers[i] = reference;
        }
        return (referring.ToByteArray(), folder);
    }

    /// <summary>
    /// Small tensors stay in the bytes: ONNX Runtime's shape inference cannot read external data,
    /// and the values it reads (a Pad's pads, a Reshape's shape, a Resize's scales, as tf2onnx
    /// writes them as initializers) are small. Weights are not.
    /// </summary>
    public const int InlineBelowBytes = 4096;

    /// <summary>The mapped file a tensor's raw data is a view of, and where in it; null if it is not one.</summary>
    private static (string File, int Offset, int Length)? FileOf(TensorProto tensor) =>
        tensor.RawData.Length > 0 && MemoryMarshal.TryGetMemoryManager<byte, MappedFile>(tensor.RawData.Memory, out var file, out var offset, out var length)
            ? (file.Path, offset, length)
            : null;
}
