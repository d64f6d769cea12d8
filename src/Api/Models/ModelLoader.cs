using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Inference;

namespace SaliencyService.Api.Models;

/// <summary>Opens one model folder: validates it with ONNX Runtime and describes it.</summary>
public sealed class ModelLoader(OnnxSessionFactory sessions, ExplainAnalysis analysis)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>Parses a manifest; a malformed one is the client's mistake (400).</summary>
    public static ModelManifest ParseManifest(string? json)
    {
        if (string.IsNullOrWhiteSpace(json)) return new ModelManifest();
        try
        {
            return JsonSerializer.Deserialize<ModelManifest>(json, Json) ?? new ModelManifest();
        }
        catch (JsonException e)
        {
            throw ProblemException.BadRequest("The manifest is not valid JSON for a model manifest: " + e.Message);
        }
    }

    /// <summary>
    /// Loads <c>model.onnx</c> and <c>model.json</c> from <paramref name="directory"/>.
    /// A file ONNX Runtime refuses is a 422 carrying the runtime's reason.
    /// </summary>
    public ServedModel Open(string directory, string name)
    {
        var modelPath = Path.Combine(directory, StoreLayout.ModelFile);
        var manifestPath = Path.Combine(directory, StoreLayout.ManifestFile);
        var manifest = ParseManifest(File.Exists(manifestPath) ? File.ReadAllText(manifestPath) : null);

        InferenceSession session;
        string provider;
        try
        {
            (session, provider) = sessions.Create(modelPath);
        }
        catch (OnnxRuntimeException e)
        {
            // The runtime names the staging path; the client only knows its own file.
            throw ProblemException.Unprocessable("ONNX Runtime cannot load the model: " + e.Message.Replace(modelPath, StoreLayout.ModelFile));
        }

        var onnx = new OnnxModel(session, provider);
        ModelExplainer? explainer = null;
        try
        {
            var preprocessing = PreprocessingResolver.Resolve(manifest, onnx.Inputs);
            var explained = onnx.Outputs.FirstOrDefault(o => o.DataType == "float32");
            ExplainDescriptor explain;
            (explainer, explain) = explained is null
                ? (null, new ExplainDescriptor(false, [], null, null, [], "The model has no float32 output to explain."))
                : analysis.Analyse(modelPath, onnx, preprocessing, explained.Name);
            var file = new FileInfo(modelPath);
            var descriptor = new ModelDescriptor(
                name,
                Sha256(modelPath),
                file.Length,
                file.LastWriteTimeUtc,
                onnx.Producer,
                onnx.Inputs,
                onnx.Outputs,
                preprocessing,
                manifest.Labels,
                provider,
                explain);
            return new ServedModel(descriptor, onnx, explainer);
        }
        catch
        {
            onnx.Dispose();
            explainer?.Dispose();
            throw;
        }
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
