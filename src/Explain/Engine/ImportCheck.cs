using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Contracts;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Isolation;
using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// An uploaded model is untrusted input, and native libraries (ONNX Runtime parsing it, libtorch
/// running it) can crash on it. So an import's session creation, mirror build, parity probe and
/// gradient-engine check run first in a child process (<see cref="ChildProcess"/>); the service
/// then builds what the child's verdict says without probing again. A child that crashes costs
/// the import (422), never the service.
/// </summary>
public static class ImportCheck
{
    private static readonly JsonSerializerOptions OneLine = new(JsonSerializerDefaults.Web);

    /// <param name="Served">ONNX Runtime's graph optimizations for the served model's session.</param>
    private sealed record Settings(OnnxRuntimeOptions OnnxRuntime, ExplainOptions Explain, GraphOptimizationLevel Served);

    /// <summary>What the child answers: the explain verdict and the ONNX Runtime backward's value shapes, or the problem that refuses the model.</summary>
    private sealed record Answer(ExplainDescriptor? Explain, string? Refusal, string? Detail, Dictionary<string, TensorInfo>? Shapes = null);

    /// <summary>The child's progress line once the model has loaded in ONNX Runtime and run on the probe.</summary>
    public const string Probed = "probed";

    /// <summary>The child's progress step once it has built the ONNX Runtime backward it judges (then its <see cref="BackwardPlan"/>).</summary>
    public const string BackwardOpened = "backward-opened";

    /// <summary>
    /// Checks the model folder in a child; returns its explain verdict, where ONNX Runtime's backward
    /// was chosen the value shapes it was written for (<see cref="OrtBackprop.Shapes"/>), and the
    /// graph optimizations the model is served with: all of them, or up to the layout level where
    /// all of them crashed the child before it had run the model once (ONNX Runtime 1.31 does on
    /// float16 attention: its fourth level, which only float16 graphs use). A second child then
    /// checks the model at that level.
    /// </summary>
    /// <param name="probed">
    /// Told (on another thread) once the child has loaded the model in ONNX Runtime at the given
    /// level and run it on the probe, while its checks go on: the caller may load it too from then
    /// on, as a crash there would have ended the child first.
    /// </param>
    /// <param name="backwardOpened">
    /// Told (on the same thread, after <paramref name="probed"/>) once the child has built the ONNX
    /// Runtime backward it is about to judge, with what it was built from: the caller may build it
    /// too from then on (<see cref="ModelFileLoad.PrepareBackward"/>).
    /// </param>
    /// <exception cref="ClientInputException">The model is refused: what the child found, or that it crashed.</exception>
    public static (ExplainDescriptor Explain, IReadOnlyDictionary<string, TensorInfo>? Shapes, GraphOptimizationLevel Level) Run(string directory,
        OnnxSessionFactory sessions, ExplainAnalysis analysis, Action<GraphOptimizationLevel>? probed = null, Action<BackwardPlan>? backwardOpened = null)
    {
        _ = analysis.Engine; // the service's oneDNN choice is made (and handed down) before the first child
        var level = GraphOptimizationLevel.ORT_ENABLE_ALL;
        var (result, ran) = RunChild(directory, sessions, analysis, level, probed, backwardOpened);
        if (result.Faulted && !ran)
        {
            level = GraphOptimizationLevel.ORT_ENABLE_LAYOUT;
            (result, _) = RunChild(directory, sessions, analysis, level, probed, backwardOpened);
        }
        if (result.Signal is not null)
            throw new UnsupportedModelException(
                $"Checking the model crashed a native library ({result.Describe()}); it was not imported and the service is unaffected.");
        Answer? answer = null;
        try
        {
            answer = result.Succeeded ? JsonSerializer.Deserialize<Answer>(result.LastLine, OneLine) : null;
        }
        catch (JsonException)
        {
        }
        if (answer?.Explain is { } explain) return (explain, answer.Shapes, level);
        if (answer is { Refusal: { } refusal, Detail: { } detail })
            throw refusal switch
            {
                nameof(InvalidArgumentException) => new InvalidArgumentException(detail),
                nameof(InputTooLargeException) => new InputTooLargeException(detail),
                nameof(UnsupportedFormatException) => new UnsupportedFormatException(detail),
                _ => new UnsupportedModelException(detail),
            };
        throw new UnsupportedModelException($"The model could not be checked: {result.Describe()}.");
    }

    /// <summary>One child's check at <paramref name="level"/>; whether it ran the model on the probe.</summary>
    private static (ChildResult Result, bool Ran) RunChild(string directory, OnnxSessionFactory sessions, ExplainAnalysis analysis, GraphOptimizationLevel level,
        Action<GraphOptimizationLevel>? probed, Action<BackwardPlan>? backwardOpened)
    {
        var ran = false;
        var settings = JsonSerializer.Serialize(new Settings(sessions.Settings, analysis.Options, level), OneLine);
        var result = ChildProcess.RunOnSpare(ChildCommands.ImportCheck, [directory, settings],
            TimeSpan.FromSeconds(Math.Max(1, analysis.Options.ImportCheckTimeoutSeconds)), step =>
            {
                if (step == Probed)
                {
                    ran = true;
                    probed?.Invoke(level);
                }
                else if (step.StartsWith(BackwardOpened + " ", StringComparison.Ordinal) && Plan(step[(BackwardOpened.Length + 1)..]) is { } plan)
                    backwardOpened?.Invoke(plan);
            });
        return (result, ran);
    }

    /// <summary>A plan as the child wrote it; null if it is not one (then nothing is built before the verdict).</summary>
    private static BackwardPlan? Plan(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<BackwardPlan>(json, OneLine) is { Input: not null, Output: not null, Shapes: not null } plan ? plan : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The child's side: args = model folder, settings (JSON). Answers one JSON line.</summary>
    public static int RunChild(string[] args)
    {
        if (args.Length != 2) return 2;
        var settings = JsonSerializer.Deserialize<Settings>(args[1], OneLine)!;
        // One thread a session: the check has its float64 pass beside ONNX Runtime's, and the service
        // builds its backward beside the check's last passes (at nice 0 where the child is at 10);
        // a two-thread pass waits at every operator for whichever thread was preempted.
        settings.OnnxRuntime.IntraOpThreads = 1;
        var sessions = new OnnxSessionFactory(settings.OnnxRuntime);
        var analysis = new ExplainAnalysis(settings.Explain, sessions)
        {
            CheckOnly = true,
            BackwardOpened = plan => ChildProcess.WriteProgress(BackwardOpened, JsonSerializer.Serialize(plan, OneLine)),
        };
        Answer answer;
        try
        {
            var model = ModelInspection.Open(args[0], sessions, analysis, verdict: null, probed: () => ChildProcess.WriteProgress(Probed), level: settings.Served);
            answer = new Answer(model.Explain, null, null, (model.Explainer?.Engine as OrtGradientEngine)?.Shapes.ToDictionary());
            model.Explainer?.Dispose();
            model.Onnx.Dispose();
        }
        catch (ClientInputException e)
        {
            answer = new Answer(null, e.GetType().Name, e.Message);
        }
        ChildProcess.WriteAnswer(JsonSerializer.Serialize(answer, OneLine));
        return 0;
    }
}
