using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Mirror;

public sealed partial class GraphMirror
{
    /// <summary>
    /// Turns nodes into steps, or folds those whose inputs are all constant into constants,
    /// collecting every node it cannot convert.
    /// </summary>
    /// <param name="constants">Constants by name; folded outputs join them.</param>
    /// <param name="ownsFolded">Folded outputs are also <paramref name="owned"/> (a branch's: its constants' map is not the mirror's).</param>
    private sealed class NodeBuild(int opset, ScalarType floatType, Dictionary<string, Tensor> constants, List<Tensor> owned,
        SortedSet<string> unsupported, bool ownsFolded = false)
    {
        /// <param name="rectifiers">Where rectifier outputs are listed (none for a branch's: they are not the graph's values).</param>
        public void Add(NodeProto node, List<Step> steps, List<string>? rectifiers)
        {
            if (node.Domain is not ("" or "ai.onnx"))
            {
                unsupported.Add($"{node.Domain}:{node.OpType}");
                return;
            }
            try
            {
                if (node.OpType == "If")
                {
                    steps.Add(If(node));
                    return;
                }
                var convert = OpRegistry.Find(node.OpType, opset);
                if (convert is null)
                {
                    unsupported.Add($"{node.OpType} (opset {opset})");
                    return;
                }
                var constantInputs = node.Input.Select(name => constants.GetValueOrDefault(name)).ToArray();
                var context = new OpContext(node, opset, constantInputs, owned, floatType);
                var kernel = convert(context);
                if (Rectifier.UpperBound(context) is not null) rectifiers?.Add(node.Output[0]);

                var foldable = node.Input.All(name => name.Length == 0 || constants.ContainsKey(name));
                if (foldable)
                {
                    var outputs = kernel(constantInputs, RectifierRule.Gradient);
                    for (var o = 0; o < node.Output.Count && o < outputs.Length; o++)
                        if (node.Output[o].Length > 0)
                        {
                            var kept = Keep(outputs[o], floatType);
                            constants[node.Output[o]] = kept;
                            if (ownsFolded) owned.Add(kept);
                        }
                }
                else steps.Add(new Step(node.OpType, node.Input.ToArray(), node.Output.ToArray(), kernel, OpRegistry.Gradient(context)));
            }
            catch (UnsupportedOperatorException e)
            {
                unsupported.Add($"{node.OpType}: {e.Reason}");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A node libtorch refuses while folding (odd shapes, types) makes the model unexplainable, not the import fail.
                unsupported.Add($"{node.OpType}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }

        /// <summary>
        /// If as one step: both branches built, the condition choosing one when it runs (exporters
        /// branch on shapes: PyTorch's squeeze of a dimension it cannot size). Its inputs are the
        /// condition and the enclosing values the branches read. No backward rule: autograd
        /// differentiates through the branch taken.
        /// </summary>
        private Step If(NodeProto node)
        {
            var branches = new[] { "then_branch", "else_branch" }
                .Select(name => node.Attribute.FirstOrDefault(a => a.Name == name)?.G ?? throw new UnsupportedOperatorException("If", opset, $"no {name}"))
                .Select(Branch).ToArray();
            if (branches.Any(b => b.Outputs.Length != node.Output.Count))
                throw new UnsupportedOperatorException("If", opset, "a branch with another number of outputs than the node");
            var reads = ImplicitInputs(node).ToArray();
            OpKernel kernel = (x, rule) =>
            {
                var branch = branches[x[0]!.item<bool>() ? 0 : 1];
                var values = new Dictionary<string, Tensor>(branch.Constants, StringComparer.Ordinal);
                for (var i = 0; i < reads.Length; i++)
                    if (x[i + 1] is { } value) values[reads[i]] = value;
                Run(branch.Steps, values, rule, CancellationToken.None);
                return branch.Outputs.Select(name => values[name]).ToArray();
            };
            return new Step(node.OpType, [node.Input[0], .. reads], node.Output.ToArray(), kernel, null);
        }

        private IfBranch Branch(GraphProto graph)
        {
            var local = new Dictionary<string, Tensor>(constants, StringComparer.Ordinal);
            foreach (var initializer in graph.Initializer)
            {
                var kept = Keep(TensorReader.ToTorch(initializer), floatType);
                owned.Add(kept);
                local[initializer.Name] = kept;
            }
            var steps = new List<Step>();
            var build = new NodeBuild(opset, floatType, local, owned, unsupported, ownsFolded: true);
            // ONNX keeps a graph's nodes in an order that runs.
            foreach (var node in graph.Node) build.Add(node, steps, null);
            var outputs = graph.Output.Select(o => o.Name).ToArray();
            // Each run starts from the constants the branch reads, not every one the model has.
            var read = steps.SelectMany(s => s.Inputs).Concat(outputs).ToHashSet(StringComparer.Ordinal);
            return new IfBranch(local.Where(c => read.Contains(c.Key)).ToDictionary(StringComparer.Ordinal), steps, outputs);
        }
    }

    private sealed record IfBranch(Dictionary<string, Tensor> Constants, List<Step> Steps, string[] Outputs);

    /// <summary>The values a node reads: its inputs, and those its subgraphs read from the enclosing graph.</summary>
    private static IEnumerable<string> Reads(NodeProto node) => node.Input.Concat(ImplicitInputs(node));

    /// <summary>The enclosing graph's values a node's subgraphs (If's branches) read.</summary>
    private static IEnumerable<string> ImplicitInputs(NodeProto node) =>
        node.Attribute.SelectMany(a => a.G is { } g ? [g] : a.Graphs.ToArray()).SelectMany(OuterReads).Distinct(StringComparer.Ordinal);

    private static IEnumerable<string> OuterReads(GraphProto graph)
    {
        var local = graph.Initializer.Select(i => i.Name).Concat(graph.Input.Select(i => i.Name)).Concat(graph.Node.SelectMany(n => n.Output))
            .ToHashSet(StringComparer.Ordinal);
        return graph.Node.SelectMany(Reads).Concat(graph.Output.Select(o => o.Name)).Where(name => name.Length > 0 && !local.Contains(name));
    }
}
