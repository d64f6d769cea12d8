using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Api.Observability;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Isolation;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Models;

/// <summary>Opens one model folder: validates it with ONNX Runtime and describes it.</summary>
public sealed class ModelLoader(OnnxSessionFactory sessions, ExplainAnalysis analysis)
{
    /// <summary>
    /// Loads <c>model.onnx</c> and <c>model.json</c> from <paramref name="directory"/>.
    /// A file ONNX Runtime refuses is a 422 carrying the runtime's reason.
    /// </summary>
    /// <param name="untrusted">
    /// Not checked here before: without a verdict stored at import (<see cref="StoredVerdict"/>),
    /// its checks run first in a child process (<see cref="ImportCheck"/>, unless
    /// <c>Saliency:Explain:IsolateImports</c> is off), so a model that crashes a native library is a 422.
    /// </param>
    /// <param name="version">The folder's version, as its caller read it before the load; read here otherwise.</param>
    public ServedModel Open(string directory, string name, bool untrusted = false, ModelVersion? version = null)
    {
        // Read first: a replace that lands while this loads leaves a newer version to load next.
        version ??= ModelVersion.Read(directory) ?? throw new IOException($"'{name}' has no model file.");
        var stored = StoredVerdict.Read(directory, version, analysis.Options);
        var isolated = stored is null && untrusted && analysis.Options.IsolateImports;
        InspectedModel model;
        // The model file, loaded here once the child has loaded and run it, while its checks go on.
        ModelFileLoad? loading = null;
        try
        {
            var started = Stopwatch.GetTimestamp();
            var (verdict, shapes) = stored is not null ? (stored, null)
                : isolated ? ImportCheck.Run(directory, sessions, analysis, () => loading = ModelFileLoad.Start(directory, sessions),
                    plan => loading?.PrepareBackward(analysis, plan))
                : default;
            if (isolated) ServerTiming.Add("check", started, "isolated");
            started = Stopwatch.GetTimestamp();
            model = ModelInspection.Open(directory, sessions, analysis, verdict, shapes, loading);
            ServerTiming.Add(verdict is null ? "check" : "build", started);
        }
        catch
        {
            // Refused after the child's first step: the session loaded meanwhile is not served.
            loading?.Abandon();
            throw;
        }
        finally
        {
            // The next import's spare child starts once the check is done, not during it: it would take cores from the
            // check. (At a low priority, it takes little from the ONNX Runtime backward that may still be building.)
            if (isolated) _ = Task.Run(ChildProcess.StartSpare);
        }
        try
        {
            var modelPath = Path.Combine(directory, StoreLayout.ModelFile);
            var file = new FileInfo(modelPath);
            var descriptor = new Contracts.ModelDescriptor(
                name,
                version.Sha256 ?? Sha256(modelPath), // computed once at import; by hand-made folders only here
                file.Length,
                file.LastWriteTimeUtc,
                model.Onnx.Producer,
                model.Onnx.Inputs,
                model.Onnx.Outputs,
                model.Preprocessing,
                model.Manifest.Labels,
                model.Onnx.ExecutionProvider,
                model.Explain);
            return new ServedModel(descriptor, model.Onnx, model.Explainer, version);
        }
        catch
        {
            model.Onnx.Dispose();
            model.Explainer?.Dispose();
            throw;
        }
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
