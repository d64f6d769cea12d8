using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Onnx;

/// <summary>Reads an ONNX model, with its external data files, for the mirror.</summary>
public static class OnnxFile
{
    /// <summary>Parses <paramref name="path"/>; external tensor data is read from beside it.</summary>
    /// <exception cref="UnsupportedModelException">Not a readable ONNX model.</exception>
    public static ModelProto Load(string path)
    {
        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new UnsupportedModelException("The file is not a valid ONNX protobuf: " + e.Message);
        }
        if (model.Graph is null) throw new UnsupportedModelException("The ONNX model has no graph.");

        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var tensor in model.Graph.Initializer) ResolveExternalData(tensor, directory);
        foreach (var node in model.Graph.Node)
        foreach (var attribute in node.Attribute)
            if (attribute.T is not null) ResolveExternalData(attribute.T, directory);
        return model;
    }

    /// <summary>The opset of the default (ai.onnx) domain that the model imports.</summary>
    public static int DefaultOpset(ModelProto model) =>
        (int)(model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1);

    private static void ResolveExternalData(TensorProto tensor, string directory)
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

        var offset = entries.TryGetValue("offset", out var o) ? long.Parse(o) : 0;
        using var stream = File.OpenRead(file);
        var length = entries.TryGetValue("length", out var l) ? long.Parse(l) : stream.Length - offset;
        if (offset < 0 || length < 0 || offset + length > stream.Length)
            throw new UnsupportedModelException($"Tensor '{tensor.Name}' reads past the end of '{location}'.");
        var bytes = new byte[length];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        tensor.RawData = ByteString.CopyFrom(bytes);
        tensor.DataLocation = TensorProto.Types.DataLocation.Default;
        tensor.ExternalData.Clear();
    }
}
