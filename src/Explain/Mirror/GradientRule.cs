using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// One forward node as its backward rule sees it while the backward graph is written: tensor
/// names, the names of its outputs' gradients in the backward graph (null where none flows),
/// which inputs want a gradient, shapes (−1 marks the batch dimension), constant inputs, and
/// which inputs are computed from the input's values (neither constants nor made from shapes).
/// </summary>
public sealed record GradientNode(
    string[] Inputs, string[] Outputs, string?[] OutputGradients, bool[] Wanted,
    long[]?[] InputShapes, long[]?[] OutputShapes, Tensor?[] Constants, bool[] FromValues);

/// <summary>Writes a node's vector–Jacobian product into the backward graph: the names of its inputs' gradients.</summary>
public delegate string?[] GradientEmitter(BackwardGraph graph, GradientNode node);

/// <summary>An op's backward as ONNX nodes (<see cref="OnnxGradientAttribute"/>).</summary>
public sealed record GradientRule(GradientEmitter Emit);
