using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Imaging;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// A folder's model file being loaded: ONNX Runtime's session (made at <paramref name="Level"/>) and
/// the explainer's own parse of the file (managed code), side by side.
/// </summary>
public sealed record ModelFileLoad(Task<(InferenceSession Session, string Provider)> Session, Task<Onnx.Proto.ModelProto> Parsed, GraphOptimizationLevel Level)
{
    /// <param name="mapped">Whether the parse maps the weights instead of copying them (<see cref="OnnxFile.Map"/>: for the isolated import check).</param>
    /// <param name="level">ONNX Runtime's graph optimizations for the served session (<see cref="OnnxSessionFactory.Create(string, GraphOptimizationLevel)"/>).</param>
    public static ModelFileLoad Start(string directory, OnnxSessionFactory sessions, bool mapped = false, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        var path = Path.Combine(directory, ModelInspection.ModelFile);
        var share = !mapped && sessions.RunsOnCpu && sessions.Settings.ShareWeights;
        // The weights move before the parse is handed out, so every session written from it shares them.
        var loaded = Task.Run(() =>
        {
            var model = Parse(path, mapped);
            return (Model: model, Weights: share ? Share(model, sessions.Settings.WeightsFolder) : null);
        });
        return new(Task.Run(() => sessions.Create(path, level)), Part(loaded, l => l.Model), level) { Weights = Part(loaded, l => l.Weights) };
    }

    /// <summary>One part of what the load gives, its failure the load's own exception.</summary>
    private static async Task<T> Part<T>(Task<(Onnx.Proto.ModelProto Model, SharedWeights? Weights)> loaded, Func<(Onnx.Proto.ModelProto Model, SharedWeights? Weights), T> part) =>
        part(await loaded);

    /// <summary>The parse's weights moved to be shared (<see cref="SharedWeights.Create"/>); null where the folder takes no file (each session then keeps its own copy).</summary>
    private static SharedWeights? Share(Onnx.Proto.ModelProto model, string folder)
    {
        try
        {
            return SharedWeights.Create(model, folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The model file as the explainer reads it: parsed, and real-valued float32 where the file is not (<see cref="Float32Graph"/>).</summary>
    public static Onnx.Proto.ModelProto Parse(string path, bool mapped) => Float32Graph.Widen(mapped ? OnnxFile.Map(path) : OnnxFile.Load(path));

    /// <summary>
    /// The weights the sessions written from the parse share (<see cref="SharedWeights"/>), moved
    /// out of the parse before anything reads it; null where they are not shared. Disposed by
    /// whoever takes the model (<see cref="InspectedModel.Weights"/>), or by <see cref="Abandon"/>.
    /// </summary>
    public Task<SharedWeights?> Weights { get; private init; } = Task.FromResult<SharedWeights?>(null);

    /// <summary>The mirror built ahead of the verdict, and its ONNX Runtime backward once the verdict serves them (<see cref="PrepareBackward"/>), if they are.</summary>
    public PreparedBackward? Backward { get; private set; }

    /// <summary>Starts preparing what <paramref name="plan"/> says (once: a later plan is ignored).</summary>
    public void PrepareBackward(ExplainAnalysis analysis, BackwardPlan plan) => Backward ??= analysis.Prepare(Parsed, plan);

    /// <summary>Disposes what was loaded and built, once done, where nothing took it (ONNX Runtime guards a second dispose).</summary>
    public void Abandon()
    {
        Session.ContinueWith(t => t.Result.Session.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
        Backward?.Dispose();
        Weights.ContinueWith(t => t.Result?.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
    }
}

/// <summary>A model folder opened: its session, manifest, effective preprocessing, and what explains it.</summary>
/// <param name="Weights">The weights its explainer's sessions share, if they do: disposed after <paramref name="Explainer"/> and <paramref name="Onnx"/>.</param>
public sealed record InspectedModel(OnnxModel Onnx, ModelManifest Manifest, Preprocessing Preprocessing, ModelExplainer? Explainer,
    ExplainDescriptor Explain, SharedWeights? Weights = null);

/// <summary>
/// Opens a model folder (<c>model.onnx</c>, optional <c>model.json</c>) the one way both the service
/// and the isolated import check (<see cref="ImportCheck"/>) do: ONNX Runtime session, preprocessing
/// resolved from the manifest and the model, then <see cref="ExplainAnalysis"/>.Analyse.
/// </summary>
public static class ModelInspection
{
    public const string ModelFile = "model.onnx";
    public const string ManifestFile = "model.json";

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
            throw new InvalidArgumentException("The manifest is not valid JSON for a model manifest: " + e.Message);
        }
    }

    /// <summary>A file ONNX Runtime refuses is a 422 carrying the runtime's reason.</summary>
    /// <param name="verdict">As for <see cref="ExplainAnalysis"/>.Analyse.</param>
    /// <param name="shapes">As for <see cref="ExplainAnalysis"/>.Analyse.</param>
    /// <param name="loading">The model file, being loaded already (while a child still checks it, once the child has loaded it itself); loaded here otherwise.</param>
    /// <param name="probed">Told once the model has loaded in ONNX Runtime and run on the probe (the checks' first step).</param>
    /// <param name="level">ONNX Runtime's graph optimizations for the served session, where it is loaded here.</param>
    public static InspectedModel Open(string directory, OnnxSessionFactory sessions, ExplainAnalysis analysis, ExplainDescriptor? verdict,
        IReadOnlyDictionary<string, TensorInfo>? shapes = null, ModelFileLoad? loading = null, Action? probed = null,
        GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        var modelPath = Path.Combine(directory, ModelFile);
        var manifestPath = Path.Combine(directory, ManifestFile);
        var manifest = ParseManifest(File.Exists(manifestPath) ? File.ReadAllText(manifestPath) : null);

        loading ??= ModelFileLoad.Start(directory, sessions, mapped: analysis.CheckOnly, level);
        InferenceSession served;
        string provider;
        try
        {
            (served, provider) = loading.Session.GetAwaiter().GetResult();
        }
        catch (OnnxRuntimeException e)
        {
            // The runtime names the staging path; the client only knows its own file.
            throw new UnsupportedModelException("ONNX Runtime cannot load the model: " + e.Message.Replace(modelPath, ModelFile));
        }

        var onnx = new OnnxModel(served, provider) { GraphOptimization = loading.Level };
        SharedWeights? weights = null;
        try
        {
            var preprocessing = PreprocessingResolver.Resolve(manifest, onnx.Inputs, onnx.Outputs);
            var scored = onnx.Outputs.FirstOrDefault(o => o.Name == preprocessing.Output);
            // Whether or not it can be explained, a model must run: checked on the probe first where
            // the probe is a valid input by construction, so a failure is the model's (422).
            var probe = scored is not null && verdict is null && ModelProbe.IsValidInput(onnx)
                ? ModelProbe.Run(onnx, preprocessing, scored.Name)
                : null;
            if (probe is not null) probed?.Invoke();
            var (explainer, explain) = Unexplainable(onnx, loading.Parsed, preprocessing, scored) is { } reason
                ? (null, new ExplainDescriptor(false, [], null, null, [], reason))
                : analysis.Analyse(loading.Parsed, onnx, preprocessing, scored!.Name, verdict, probe, shapes, loading.Backward);
            // An explainer was built from the parse, which had moved the weights by then.
            weights = explainer is null ? null : loading.Weights.Result;
            return new InspectedModel(onnx, manifest, preprocessing, explainer, explain, weights);
        }
        catch
        {
            onnx.Dispose();
            throw;
        }
        finally
        {
            // Weights no explainer reads go once moved (the parse may still run where the model is not explainable).
            if (weights is null) loading.Weights.ContinueWith(t => t.Result?.Dispose(), TaskContinuationOptions.OnlyOnRanToCompletion);
        }
    }

    /// <summary>Why gradients cannot explain the model, before its graph is mirrored; null where they may.</summary>
    private static string? Unexplainable(OnnxModel onnx, Task<Onnx.Proto.ModelProto> parsed, Preprocessing preprocessing, TensorDescriptor? scored)
    {
        var input = onnx.Inputs.First(i => i.Name == preprocessing.Input);
        if (input.DataType != "float32" && !DeclaredFloat(parsed, input.Name))
            return $"The model's input '{input.Name}' is {input.DataType}: the explain engine takes gradients with respect to a float32, float16 or bfloat16 input " +
                   "(or an integer one whose every use is a Cast to float).";
        if (input.Shape is [> 1 and var batch, ..])
            return $"The model takes batches of exactly {batch}; an explanation is of one input (export the model with a batch of 1 or a dynamic batch).";
        return scored is null ? "The model has no real-valued output to explain."
            : scored.DataType != "float32" && !DeclaredFloat(parsed, scored.Name)
                ? $"The model's output '{scored.Name}' is {scored.DataType}: the explain engine explains a float32, float16 or bfloat16 output."
            : null;
    }

    /// <summary>Whether the graph the explainer reads declares the graph input or output float32 (<see cref="Float32Graph"/>).</summary>
    private static bool DeclaredFloat(Task<Onnx.Proto.ModelProto> parsed, string name)
    {
        try
        {
            var graph = parsed.GetAwaiter().GetResult().Graph;
            return graph.Input.Concat(graph.Output).FirstOrDefault(v => v.Name == name)?.Type?.TensorType?.ElemType
                   == (int)Onnx.Proto.TensorProto.Types.DataType.Float;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false; // a graph the explainer cannot read: not read as float either
        }
    }
}
