using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Api.Observability;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Isolation;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Models;

/// <summary>Opens one model folder: validates it with ONNX Runtime and describes it.</summary>
public sealed class ModelLoader(OnnxSessionFactory sessions, ExplainAnalysis analysis, ServingActivity serving, ILogger<ModelLoader> logger)
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
            var (verdict, shapes, level) = stored is not null ? (stored.Explain, null, stored.GraphOptimization)
                : isolated ? ImportCheck.Run(directory, sessions, analysis, level => loading = ModelFileLoad.Start(directory, sessions, level: level),
                    plan => loading?.PrepareBackward(analysis, plan))
                : (null, null, GraphOptimizationLevel.ORT_ENABLE_ALL);
            if (isolated) ServerTiming.Add("check", started, "isolated");
            if (level != GraphOptimizationLevel.ORT_ENABLE_ALL && stored is null)
                logger.LogWarning("ONNX Runtime's full graph optimizations crashed the check of {Model}: it is served with those up to {Level}", name, level);
            started = Stopwatch.GetTimestamp();
            model = ModelInspection.Open(directory, sessions, analysis, verdict, shapes, loading, level: level);
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
            // The next import's spare child starts once serving pauses: not during the check, whose cores it would take,
            // nor under the requests that follow an import (at its low priority, it still slowed them), unless they go
            // on for long. An import that comes first starts a child of its own (cold: resnet18's check 2.4 s against 0.55 s).
            if (isolated) _ = serving.PauseAsync(SpareQuiet, SpareWaitsAtMost).ContinueWith(_ => ChildProcess.StartSpare(), TaskScheduler.Default);
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
                model.Explain) { GraphOptimization = GraphOptimizationName(model.Onnx.GraphOptimization) };
            var served = new ServedModel(descriptor, model.Onnx, model.Explainer, version, model.Weights);
            if (sessions.Settings.WinogradPredictions && model.Explainer?.Engine is OrtGradientEngine engine) SpeedUp(served, engine);
            return served;
        }
        catch
        {
            model.Onnx.Dispose();
            model.Explainer?.Dispose();
            model.Weights?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Swaps the Winograd kernel's session in for predictions once it is built and checked
    /// (<see cref="WinogradPredictions"/>), holding the version meanwhile (a replace or delete
    /// disposes it after the build).
    /// </summary>
    private void SpeedUp(ServedModel model, OrtGradientEngine engine)
    {
        if (!model.TryAcquire()) return;
        WinogradPredictions.Start(model.Onnx, engine, model.Preprocessing, model.Explainer!.Mirror.OutputName, sessions).ContinueWith(built =>
        {
            model.Release();
            if (built.IsFaulted)
                logger.LogWarning("Predictions of {Model} keep ONNX Runtime's convolutions: {Reason}", model.Name, built.Exception!.InnerException!.Message);
            else if (built.Result.Kernels > 0)
            {
                logger.LogInformation("Predictions of {Model} run {Kernels} convolutions as the Winograd kernel (probe's largest difference {Difference:G3})",
                    model.Name, built.Result.Kernels, built.Result.Difference);
                // The session it replaced is let go: its memory goes back to the system with the next trim.
                SaliencyService.Explain.Torch.NativeHeap.TrimWhenBatchesPause();
            }
        }, TaskScheduler.Default);
    }

    /// <summary>How long serving pauses before the next spare starts: longer than the gaps between one client's requests.</summary>
    private static readonly TimeSpan SpareQuiet = TimeSpan.FromSeconds(1);

    /// <summary>How long the next spare waits for that pause under unbroken load (its warm-up then slows serving for a few seconds).</summary>
    private static readonly TimeSpan SpareWaitsAtMost = TimeSpan.FromSeconds(30);

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The descriptor's name of a graph optimization level.</summary>
    private static string GraphOptimizationName(GraphOptimizationLevel level) => level switch
    {
        GraphOptimizationLevel.ORT_ENABLE_ALL => "all",
        GraphOptimizationLevel.ORT_ENABLE_LAYOUT => "layout",
        GraphOptimizationLevel.ORT_ENABLE_EXTENDED => "extended",
        GraphOptimizationLevel.ORT_ENABLE_BASIC => "basic",
        _ => "none",
    };
}
