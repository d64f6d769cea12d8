using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Onnx;

/// <summary>Reads an ONNX model, with its external data files, for the mirror.</summary>
public static class OnnxFile
{
    /// <summary>
    /// Parses <paramref name="path"/>; external tensor data is read from beside it. The weights
    /// (<c>raw_data</c>) are views of a native copy of the file (<see cref="NativeFileCopy"/>),
    /// held while the model is reachable.
    /// </summary>
    /// <exception cref="UnsupportedModelException">Not a readable ONNX model.</exception>
    public static ModelProto Load(string path) => Read(path, mapped: false);

    /// <summary>
    /// As <see cref="Load"/>, but the weights (<c>raw_data</c>, external data) are views of the
    /// mapped files (<see cref="MappedFile"/>), held while the model is reachable: no copy, and no
    /// fresh pages to fault in (parsing a 46 MB model faulted ~20k, ~0.2 s on a host where a page
    /// costs 11 µs). For a process that holds the model briefly, the isolated import check: a file
    /// rewritten in place under a mapping kills the process that maps it (SIGBUS), and a served
    /// model outlives any change an operator makes to its repository.
    /// </summary>
    /// <exception cref="UnsupportedModelException">Not a readable ONNX model.</exception>
    public static ModelProto Map(string path) => Read(path, mapped: true);

    private static ModelProto Read(string path, bool mapped)
    {
        ModelProto model;
        try
        {
            model = Parse(path, mapped ? MappedFile.Open(path) : NativeFileCopy.Read(path));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new UnsupportedModelException("The file is not a valid ONNX protobuf: " + e.Message);
        }
        if (model.Graph is null) throw new UnsupportedModelException("The ONNX model has no graph.");

        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var external = mapped ? new Dictionary<string, MappedFile>() : null;
        foreach (var tensor in model.Graph.Initializer) ResolveExternalData(tensor, directory, external);
        foreach (var node in model.Graph.Node)
        foreach (var attribute in node.Attribute)
            if (attribute.T is not null) ResolveExternalData(attribute.T, directory, external);
        return model;
    }

    /// <summary>The graph parsed as usual, the initializers' raw data wrapped in place (<see cref="RawDataSplit"/>) in <paramref name="file"/>'s bytes.</summary>
    /// <param name="file">The file's bytes (mapped or copied); null where they cannot be held.</param>
    private static ModelProto Parse(string path, NativeBytes? file)
    {
        var parts = file is null ? null : RawDataSplit.Split(file.GetSpan());
        var model = parts is null ? null : ModelProto.Parser.ParseFrom(parts.Model);
        if (model?.Graph?.Initializer is { } initializers && initializers.Count == parts!.RawData.Count)
        {
            var wrapped = false;
            for (var i = 0; i < initializers.Count; i++)
                if (parts.RawData[i] is { } raw)
                {
                    initializers[i].RawData = UnsafeByteOperations.UnsafeWrap(file!.Memory[raw]);
                    wrapped = true;
                }
            if (!wrapped) ((IDisposable)file!).Dispose(); // else the model holds the bytes, while it is reachable
            return model;
        }
        ((IDisposable?)file)?.Dispose(); // nothing points into it
        // Not well-formed where the split looks (or empty): the protobuf library says what is wrong.
        return ParseCopying(path);
    }

    private static ModelProto ParseCopying(string path)
    {
        using var stream = File.OpenRead(path);
        return ModelProto.Parser.ParseFrom(stream);
    }

    /// <summary>The opset of the default (ai.onnx) domain that the model imports.</summary>
    public static int DefaultOpset(ModelProto model) =>
        (int)(model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1);

    /// <param name="mapped">The files mapped so far, where the data is to be mapped; null: copied.</param>
    private static void ResolveExternalData(TensorProto tensor, string directory, Dictionary<string, MappedFile>? mapped)
    {
        if (tensor.DataLocation != TensorProto.Types.DataLocation.External) return;
        var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value);
        if (!entries.TryGetValue("location", out var location))
            throw new UnsupportedModelException($"Tensor '{tensor.Name}' has external data without a location.");

        // External files must stay inside the model's folder: no absolute paths, no "..".
        var file = Path.GetFullPath(Path.Combine(directory, location));
        if (Path.IsPathRooted(location) || !file.StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new UnsupportedModelException($"Tensor '{tensor.Name}' points outside the model folder ('{location}').");
        if (!File.Exists(file))
            throw new UnsupportedModelException($"Tensor '{tensor.Name}' needs the external data file '{location}', which is missing.");

        var size = new FileInfo(file).Length;
        var offset = entries.TryGetValue("offset", out var o) ? Number(o) : 0;
        var length = entries.TryGetValue("length", out var l) ? Number(l) : size - offset;
        if (offset < 0 || length < 0 || offset > size || length > size - offset)
            throw new UnsupportedModelException($"Tensor '{tensor.Name}' reads past the end of '{location}'.");
        tensor.RawData = length == 0 ? ByteString.Empty
            : mapped is null ? Copied(file, offset, length)
            : UnsafeByteOperations.UnsafeWrap(Mapped(file, location, mapped).Memory.Slice((int)offset, (int)length));
        tensor.DataLocation = TensorProto.Types.DataLocation.Default;
        tensor.ExternalData.Clear();
    }

    /// <summary>A non-negative integer, or −1 where the file's text is not one (then refused as out of range).</summary>
    private static long Number(string text) =>
        long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : -1;

    private static ByteString Copied(string file, long offset, long length)
    {
        using var stream = File.OpenRead(file);
        var bytes = new byte[length];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        return UnsafeByteOperations.UnsafeWrap(bytes); // (nothing else holds the array)
    }

    private static MappedFile Mapped(string file, string location, Dictionary<string, MappedFile> mapped)
    {
        if (!mapped.TryGetValue(file, out var bytes))
            mapped[file] = bytes = MappedFile.Open(file)
                                   ?? throw new UnsupportedModelException($"The external data file '{location}' is 2 GiB or more; each file must be smaller.");
        return bytes;
    }
}
