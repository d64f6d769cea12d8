using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Explain.Onnx;

/// <summary>
/// The graph the explainer reads for a model that takes integers (tf2onnx's uint8 image models):
/// an integer input whose every use is a Cast to float is declared float instead. That graph is the
/// same function as the served one on every integer input (a Cast of a float to float changes
/// nothing) and a real-valued one between them, so it has gradients with respect to the pixels;
/// the import's parity check still compares it with the served model, fed integers.
/// </summary>
public static class RealValuedInputs
{
    /// <summary>Declares each such input of <paramref name="model"/> float, in place; returns the model.</summary>
    public static ModelProto Widen(ModelProto model)
    {
        var graph = model.Graph;
        if (graph is null) return model;
        var initialized = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var input in graph.Input)
        {
            // (An initializer listed as an input, as older exporters write them, keeps its own type.)
            if (input.Type?.TensorType is not { } tensor || !FloatElements.IsInteger((TensorElementType)tensor.ElemType) || initialized.Contains(input.Name)) continue;
            var uses = graph.Node.Where(n => n.Input.Contains(input.Name)).ToArray();
            // (ONNX Runtime's element types are ONNX's own numbers.)
            var castsToFloat = uses.Length > 0 && uses.All(n => n.OpType == "Cast" && n.Domain is "" or "ai.onnx"
                && n.Attribute.FirstOrDefault(a => a.Name == "to")?.I is (long)DataType.Float or (long)DataType.Double);
            if (castsToFloat && graph.Output.All(o => o.Name != input.Name))
                tensor.ElemType = (int)DataType.Float;
        }
        return model;
    }
}
