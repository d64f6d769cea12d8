using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// The served model with what its backward needs: as a recording forward (the values the backward
/// reads as outputs), or merged with the backward into one graph, so that one ONNX Runtime run
/// computes the forward, chooses the target and back-propagates, the values between the two kept
/// in ONNX Runtime's own layout (a guided map on resnet18: 41.7 ms against 43 as two sessions;
/// mobilenet_v2, whose backward reads 35 values: 15.3 against 17.6).
/// </summary>
public static class BackwardMerge
{
    /// <summary>The oldest opset that can be read at the backward's: no op the mirror takes changes its meaning from 13 to 17.</summary>
    public const int OldestOpset = 13;

    /// <summary>
    /// Whether the model's graph can take the backward's nodes: its opset is <see cref="OldestOpset"/>
    /// or later (older models keep two sessions), no name of its graph is in the backward's
    /// namespace, and it has no RoiAlign before opset 16 (whose default sampling changed there).
    /// </summary>
    public static bool Allowed(ModelProto model)
    {
        var opset = OnnxFile.DefaultOpset(model);
        var graph = model.Graph;
        var names = graph.Input.Select(i => i.Name).Concat(graph.Initializer.Select(i => i.Name))
            .Concat(graph.SparseInitializer.Select(i => i.Values?.Name ?? "")).Concat(graph.Node.SelectMany(n => n.Output));
        return opset >= OldestOpset
               && !names.Any(n => n.StartsWith(BackwardGraph.Prefix, StringComparison.Ordinal))
               && (opset >= 16 || graph.Node.All(n => n.OpType != "RoiAlign"));
    }

    /// <summary>
    /// Whether the merged graph stays within protobuf's 2 GB message (and so within what ONNX
    /// Runtime reads from memory): it holds both the model's weights and the backward's.
    /// </summary>
    public static bool Fits(ModelProto model, ModelProto backwardModel) =>
        (long)model.CalculateSize() + backwardModel.CalculateSize() < int.MaxValue - (1 << 20);

    /// <summary>
    /// The served model with <paramref name="outputs"/> as graph outputs, and the argmax indices of
    /// the MaxPools whose backward reads them (<see cref="BackwardGraph.IndicesOf"/>).
    /// </summary>
    /// <param name="shapes">The value shapes the backward was written for, with the indices'.</param>
    public static ModelProto Recording(ModelProto model, BackwardGraph backward, IEnumerable<string> outputs, IReadOnlyDictionary<string, TensorInfo> shapes)
    {
        var recording = model.Clone();
        foreach (var output in backward.MaxPoolIndices)
            recording.Graph.Node.Single(n => n.OpType == "MaxPool" && n.Output[0] == output).Output.Add(BackwardGraph.IndicesOf(output));
        var existing = recording.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in outputs.Where(existing.Add))
            recording.Graph.Output.Add(BackwardGraph.ValueInfo(name, BackwardGraph.ElementType(shapes[name].Type), null));
        return recording;
    }

    /// <summary>
    /// One graph: the model's forward handing out <paramref name="outputs"/>, and the backward's
    /// nodes reading the forward's values directly; its inputs are the model's and
    /// <see cref="BackwardGraph.Target"/>, its added outputs <see cref="BackwardGraph.InputGradient"/>
    /// and <see cref="BackwardGraph.Chosen"/>. Only for a model <see cref="Allowed"/> says takes it.
    /// </summary>
    public static ModelProto Merge(ModelProto model, ModelProto backwardModel, BackwardGraph backward, IEnumerable<string> outputs,
        IReadOnlyDictionary<string, TensorInfo> shapes)
    {
        var merged = Recording(model, backward, outputs, shapes);
        var graph = merged.Graph;
        // The backward's inputs the forward computes (or takes) become its values; only the target stays an input.
        var forwardValues = graph.Input.Select(i => i.Name).Concat(backward.ForwardInputs).ToHashSet(StringComparer.Ordinal);
        graph.Input.AddRange(backwardModel.Graph.Input.Where(i => !forwardValues.Contains(i.Name)));
        // The weights the backward shares with the forward are the forward's already (BackwardGraph.ConstantInput).
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        graph.Initializer.AddRange(backwardModel.Graph.Initializer.Where(i => !initializers.Contains(i.Name)));
        graph.Node.AddRange(backwardModel.Graph.Node);
        graph.Output.AddRange(backwardModel.Graph.Output);
        // The backward's ops at its opset mean what they meant at 17 up to today's; the model's from 13 (Allowed) on.
        var opset = merged.OpsetImport.First(o => o.Domain is "" or "ai.onnx");
        opset.Version = Math.Max(opset.Version, backwardModel.OpsetImport.First(o => o.Domain == "").Version);
        merged.OpsetImport.AddRange(backwardModel.OpsetImport.Where(o => o.Domain == NativeOps.Domain));
        merged.IrVersion = Math.Max(merged.IrVersion, backwardModel.IrVersion);
        ForwardWinograd.Rewrite(merged, shapes, backward.Winograd);
        return merged;
    }
}
