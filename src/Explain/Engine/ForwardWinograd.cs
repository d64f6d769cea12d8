using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Explain.Engine;

/// <summary>
/// A merged pass's 3×3 convolutions of stride 1 or 2 that <see cref="WinogradConvolutions"/> takes, as
/// <see cref="NativeOps.WinogradConv"/>, each with the residual <c>Add</c> and the <c>Relu</c> that
/// follow it fused where nothing else reads their inputs. Fused, each output is written once, as
/// ONNX Runtime's own fused convolution writes it.
/// </summary>
public static class ForwardWinograd
{
    /// <summary>Rewrites <paramref name="model"/>'s graph in place.</summary>
    /// <param name="shapes">The value shapes the pass was written for: a residual is fused only where it has the output's shape (no broadcast).</param>
    /// <param name="winograd">The convolutions the pass runs as the kernel (its backward's, <see cref="BackwardGraph.Winograd"/>).</param>
    public static void Rewrite(ModelProto model, IReadOnlyDictionary<string, TensorInfo> shapes, WinogradConvolutions winograd)
    {
        if (winograd == WinogradConvolutions.None) return;
        var graph = model.Graph;
        var constants = graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var readers = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        foreach (var input in node.Input.Where(i => i.Length > 0).Distinct())
            (readers.TryGetValue(input, out var list) ? list : readers[input] = []).Add(node);

        // The one node reading a value nothing else reads (no graph output either), if of that type.
        NodeProto? SoleReader(string value, string opType) =>
            !outputs.Contains(value) && readers.TryGetValue(value, out var list) && list is [var only] && only.OpType == opType && only.Domain is "" or "ai.onnx"
                ? only : null;

        var replaced = new Dictionary<NodeProto, NodeProto?>(); // a fused node: at its last node's place; the others go
        foreach (var (conv, form) in graph.Node.Select(n => (Node: n, Form: Form(n, constants, shapes, winograd))).Where(c => c.Form is not null))
        {
            var output = conv.Output[0];
            var last = conv;
            string residual = "";
            if (SoleReader(output, "Add") is { } add && !replaced.ContainsKey(add) && add.Input.Count == 2 && add.Input[0] != add.Input[1])
            {
                var other = add.Input[0] == output ? add.Input[1] : add.Input[0];
                if (SameShape(other, output, shapes))
                {
                    residual = other;
                    replaced[add] = null;
                    last = add;
                }
            }
            var relu = SoleReader(last.Output[0], "Relu");
            if (relu is not null)
            {
                replaced[relu] = null;
                last = relu;
            }
            var fused = new NodeProto { OpType = NativeOps.WinogradConv, Domain = NativeOps.Domain, Name = (conv.Name.Length > 0 ? conv.Name : output) + "/winograd" };
            // A convolution without a bias that takes a residual leaves the bias out as no elements.
            var bias = conv.Input.Count > 2 ? conv.Input[2] : "";
            if (bias.Length == 0 && residual.Length > 0) graph.Initializer.Add(NativeOps.NoInput(bias = output + "/no_bias"));
            fused.Input.AddRange([conv.Input[0], conv.Input[1]]);
            if (bias.Length > 0) fused.Input.Add(bias);
            if (residual.Length > 0) fused.Input.Add(residual);
            fused.Output.Add(last.Output[0]);
            if (relu is not null) fused.Attribute.Add(BackwardGraph.Attribute("relu", 1));
            fused.Attribute.Add(form!);
            replaced[conv] = null;
            replaced[last] = fused;
        }
        if (replaced.Count == 0) return;
        var nodes = graph.Node.Select(n => replaced.TryGetValue(n, out var fused) ? fused : n).Where(n => n is not null).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
        if (!model.OpsetImport.Any(o => o.Domain == NativeOps.Domain))
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });
    }

    /// <summary>
    /// The attribute that picks the kernel's form for a 2-D convolution the kernel computes and
    /// <paramref name="winograd"/> takes (float weights [K, C, 3, 3] and bias [K] that are constants,
    /// stride 1 or 2, dilation 1, one group and one cell of padding on every side): its tile at stride
    /// 1, stride 2 otherwise; or null.
    /// </summary>
    private static AttributeProto? Form(NodeProto node, IReadOnlyDictionary<string, TensorProto> constants, IReadOnlyDictionary<string, TensorInfo> shapes,
        WinogradConvolutions winograd)
    {
        if (node.OpType != "Conv" || node.Domain is not ("" or "ai.onnx") || node.Input.Count is < 2 or > 3) return null;
        if (!constants.TryGetValue(node.Input[1], out var w) || w.DataType != (int)TensorProto.Types.DataType.Float || w.Dims is not [var k, var c, 3, 3]) return null;
        if (node.Input.Count == 3 && node.Input[2].Length > 0
            && (!constants.TryGetValue(node.Input[2], out var b) || b.DataType != (int)TensorProto.Types.DataType.Float || b.Dims.Count != 1 || b.Dims[0] != w.Dims[0]))
            return null;
        foreach (var a in node.Attribute)
        {
            var ok = a.Name switch
            {
                "pads" => a.Ints is [1, 1, 1, 1],
                "strides" => a.Ints is [1, 1] or [2, 2],
                "dilations" => a.Ints is [1, 1],
                "kernel_shape" => a.Ints is [3, 3],
                "group" => a.I == 1,
                "auto_pad" => a.S.ToStringUtf8() == "NOTSET",
                _ => false,
            };
            if (!ok) return null;
        }
        if (!node.Attribute.Any(a => a.Name == "pads")) return null;
        // Last, as it may race the kernel on this shape (ONNX Runtime's convolution keeps the image's size).
        var image = shapes.TryGetValue(node.Input[0], out var x) && x.Shape.Length == 4 ? x.Shape : [-1, c, -1, -1];
        if (node.Attribute.Any(a => a.Name == "strides" && a.Ints is [2, 2]))
            return winograd.TakesStrided(k, c, image[2], image[3], forward: true) ? BackwardGraph.Attribute("stride", 2) : null;
        return winograd.ForwardTile(k, c, image[2], image[3]) is long tile ? BackwardGraph.Attribute("tile", tile) : null;
    }

    private static bool SameShape(string a, string b, IReadOnlyDictionary<string, TensorInfo> shapes) =>
        shapes.TryGetValue(a, out var x) && shapes.TryGetValue(b, out var y) && x.Type == y.Type && x.Shape.SequenceEqual(y.Shape);
}
