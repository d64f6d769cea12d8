using System.Runtime.InteropServices;
using Google.Protobuf;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Torch;
using static TorchSharp.torch;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Explain.Mirror;

/// <summary>
/// The backward of a mirrored model as an ONNX graph, for ONNX Runtime to run with its prepacked,
/// fused kernels. Its inputs are the forward values the rules read (recorded by ONNX Runtime's own
/// forward of the served model, or computed by the same graph: <see cref="Engine.BackwardMerge"/>) and the
/// explained score's index (<see cref="Target"/>); its outputs are the gradient of the model input
/// and the index explained (<see cref="Chosen"/>). It is written for one rectifier rule
/// (<see cref="Rule"/>), so a rectifier's backward is only the ops its rule needs. Rules add nodes
/// through this class, with ops whose signatures hold from opset 13 on.
/// </summary>
public sealed partial class BackwardGraph
{
    public const int Opset = 17;
    public const string Prefix = "backward::";
    public const string Target = Prefix + "target";
    public const string Chosen = Prefix + "chosen";
    public const string InputGradient = Prefix + "input_gradient";

    private readonly GraphProto _graph = new() { Name = "backward" };
    private readonly IReadOnlyDictionary<string, TensorInfo> _shapes;
    private readonly HashSet<string> _inputs = new(StringComparer.Ordinal);
    private readonly List<string> _recorded = [];
    private readonly List<string> _maxPoolIndices = [];
    private readonly Dictionary<float, string> _scalars = [];
    private readonly Dictionary<string, TensorProto> _weights;
    private readonly HashSet<string> _shared = new(StringComparer.Ordinal);
    private readonly HashSet<string> _blocked = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _contributions = new(StringComparer.Ordinal);
    private string? _leftOut;
    private int _next;

    /// <param name="shapes">Every forward tensor's shape (−1 marks the batch dimension) and type.</param>
    /// <param name="input">The model input (its first dimension is the batch).</param>
    /// <param name="weights">The model's initializers, which the backward shares where it reads them (<see cref="ConstantInput"/>).</param>
    public BackwardGraph(IReadOnlyDictionary<string, TensorInfo> shapes, string input, string score, RectifierRule rule, IEnumerable<TensorProto> weights)
    {
        _shapes = shapes;
        _weights = weights.Where(w => w.DataType == (int)DataType.Float && w.DataLocation != TensorProto.Types.DataLocation.External)
            .GroupBy(w => w.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        Rule = rule;
        Seed = SeedOf(score, shapes[input].Shape[0]);
    }

    /// <summary>The score's gradient: one at the chosen index of every sample, zero elsewhere.</summary>
    public string Seed { get; }

    /// <summary>What rectifiers pass back (<see cref="Rectifier.Gradient"/>).</summary>
    public RectifierRule Rule { get; }

    /// <summary>
    /// The seed for the index <see cref="Target"/> gives ([1], int64), or for the first sample's top
    /// score where it gives −1 or no index of the score (a pass explains one index for every
    /// sample); the index it used is the output <see cref="Chosen"/>. Choosing inside the graph
    /// lets one run compute the forward, pick the top score and back-propagate it.
    /// </summary>
    private string SeedOf(string score, long batch)
    {
        AddInput(Target, DataType.Int64, [1]);
        var info = _shapes[score];
        // Scores are laid out per sample (the batch first): [n, classes] whatever their rank; n is free or the model's fixed batch.
        var classes = info.Shape.Aggregate(1L, (product, d) => product * (d < 0 ? info.BatchFactor : d)) / Math.Max(batch, 1);
        long[] perSampleShape = [-1, classes];
        var perSample = Reshape(Recorded(score), info.Shape, perSampleShape);
        var top = Node("Slice", [Node("ArgMax", [perSample], Attribute("axis", 1), Attribute("keepdims", 0)), Ints(0), Ints(1)]);
        var outside = Node("Or", [Node("Less", [Target, Ints(0)]), Node("Less", [Ints(classes - 1), Target])]);
        var chosen = Node("Where", [outside, top, Target]);
        Output(chosen, Chosen, DataType.Int64, [1]);
        // Compared elementwise (scores > scores is false everywhere, NaN included), so that ONNX
        // Runtime's shape inference knows the seed's shape, and from it every gradient's.
        var isChosen = Node("Equal", [Constant(Scalars.Range(classes, ScalarType.Int64).reshape(1, classes)), chosen]);
        var seed = Node("Cast", [Node("Or", [Node("Greater", [perSample, perSample]), isChosen])], Attribute("to", (long)DataType.Float));
        return Reshape(seed, perSampleShape, info.Shape);
    }

    /// <summary>MaxPool outputs whose argmax indices the graph reads (input <see cref="IndicesOf"/>).</summary>
    public IReadOnlyList<string> MaxPoolIndices => _maxPoolIndices;

    /// <summary>Every forward value the graph reads, as a run feeds them: the recorded values, then MaxPool's indices.</summary>
    public string[] ForwardInputs => [.. _recorded, .. _maxPoolIndices.Select(IndicesOf)];

    public static string IndicesOf(string maxPoolOutput) => maxPoolOutput + "::indices";

    /// <summary>A forward tensor's value, as a graph input the recording forward fills.</summary>
    public string Recorded(string name)
    {
        if (_inputs.Contains(name)) return name;
        AddInput(name, ElementType(_shapes[name].Type), _shapes[name].Shape);
        _recorded.Add(name);
        return name;
    }

    /// <summary>The flat indices of the maxima a MaxPool's forward picked, recorded as its second output.</summary>
    public string RecordedIndices(string maxPoolOutput)
    {
        var name = IndicesOf(maxPoolOutput);
        if (_inputs.Contains(name)) return name;
        AddInput(name, DataType.Int64, _shapes[maxPoolOutput].Shape);
        _maxPoolIndices.Add(maxPoolOutput);
        return name;
    }

    /// <summary>Adds a node with one output and returns that output's name.</summary>
    public string Node(string opType, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        var output = $"{Prefix}{opType}_{_next++}";
        var node = new NodeProto { OpType = opType, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        _producers[output] = node;
        if (KeepsBlocked(opType, node.Input)) _blocked.Add(output);
        return output;
    }

    /// <summary>
    /// Folds a rectifier's backward into the engine's kernel (<see cref="NativeOps"/>) that computed
    /// its whole <paramref name="gradient"/>: the kernel gates it (its positive part where
    /// <paramref name="positive"/>) by 0 &lt; y &lt; <paramref name="upper"/> for the rectifier's
    /// output <paramref name="y"/> as it writes it, where the graph would read the gradient and y
    /// once more (and ONNX Runtime reorder both into its blocked layout). The kernels:
    /// <list type="bullet">
    /// <item>a <see cref="NativeOps.MaxPoolGrad"/> from y itself (a rectifier read by a max pool only: ResNet's and VGG's stem);</item>
    /// <item>an input gradient of a <see cref="NativeOps.WinogradConv"/>, or of a strided convolution
    /// (<see cref="NativeOps.Col2Im"/>, <see cref="NativeOps.DepthwiseCol2Im"/>), alone or with the
    /// residual that <see cref="Sum"/> gave it (a residual block's skip).</item>
    /// </list>
    /// Returns the gated gradient, or null where it came otherwise.
    /// </summary>
    public string? FoldedRectifier(string gradient, string y, double upper, bool positive)
    {
        if (!_producers.TryGetValue(gradient, out var node) || node.Domain != NativeOps.Domain || node.Attribute.Any(a => a.Name == "rectify")
            || !SoleContribution(gradient))
            return null;
        if (node.OpType == NativeOps.MaxPoolGrad)
        {
            if (node.Input[0] != y) return null; // it gates by its own input X
        }
        else
        {
            // Alone, or with Sum's residual: the gate G follows R.
            var (own, residual) = FusedInputs(node.OpType);
            if (own == 0 || node.Input.Count != own && node.Input.Count != residual + 1) return null;
            AddFusedInput(node, residual + 1, y);
        }
        node.Attribute.Add(Attribute("rectify", positive ? 2 : 1));
        if (!double.IsPositiveInfinity(upper)) node.Attribute.Add(Attribute("upper", (float)upper));
        return gradient;
    }

    /// <summary>A kernel's optional input at <paramref name="index"/>, the ones before it that are not given left out.</summary>
    private void AddFusedInput(NodeProto kernel, int index, string input)
    {
        while (kernel.Input.Count < index) kernel.Input.Add(LeftOut);
        kernel.Input.Add(input);
    }

    /// <summary>
    /// The kernel of ours that computed <paramref name="value"/>, an input gradient with nothing fused
    /// yet that is a <see cref="SoleContribution"/>; else null.
    /// </summary>
    private NodeProto? OwnInputGradient(string value) =>
        _producers.TryGetValue(value, out var node) && node.Domain == NativeOps.Domain && FusedInputs(node.OpType).Own is > 0 and var own
        && node.Input.Count == own && SoleContribution(value)
            ? node
            : null;

    /// <summary>
    /// For a kernel of ours that may add a residual R and then gate by a rectifier's output G (the
    /// input after R): how many inputs of its own come first, and R's index (a WinogradConv's bias B
    /// comes between); zeros for the others.
    /// </summary>
    private static (int Own, int Residual) FusedInputs(string opType) => opType switch
    {
        NativeOps.WinogradConv => (2, 3),
        NativeOps.DepthwiseCol2Im => (2, 2),
        NativeOps.Col2Im => (1, 1),
        _ => (0, 0),
    };

    /// <summary>
    /// Whether <paramref name="value"/> is a contribution to one tensor's gradient only (no rule
    /// passed it on to another, as an Add's passes its gradient to both inputs), so that no node
    /// but that tensor's sum or rule reads it, and a kernel may change what it holds.
    /// </summary>
    private bool SoleContribution(string value) => _contributions.GetValueOrDefault(value) == 1;

    /// <summary>Records that <paramref name="gradient"/> is a contribution to a tensor's gradient (see <see cref="FoldedRectifier"/>).</summary>
    public void Contributed(string gradient) => _contributions[gradient] = _contributions.GetValueOrDefault(gradient) + 1;

    /// <summary>An optional input of the engine's kernels left out (<see cref="NativeOps.NoInput"/>).</summary>
    private string LeftOut
    {
        get
        {
            if (_leftOut is null) _graph.Initializer.Add(NativeOps.NoInput(_leftOut = $"{Prefix}no_input"));
            return _leftOut;
        }
    }

    /// <summary>
    /// Whether its nodes may be the engine's own kernels (<see cref="NativeOps"/>): set where they
    /// are loaded and the backward runs on CPU, their only provider. A backward for CUDA is standard
    /// ONNX, so that none of its nodes runs on CPU between copies to and from the GPU.
    /// </summary>
    public bool NativeKernels { get; init; }

    /// <summary>Whether it is written for a pass that sums its samples' gradients (<see cref="GraphMirror.WriteBackward"/>'s <c>summed</c>).</summary>
    public bool SumsSamples { get; init; }

    /// <summary>
    /// Whether <paramref name="gradient"/> is at most a quarter non-zero in each sample of this
    /// backward: a max pool's (<see cref="NativeOps.MaxPoolGrad"/>) with strides of 2 × 2 or more,
    /// which sends each window's gradient to one cell, or a rectifier's gate or deconvnet rule over
    /// one (they keep zeros zero); in a backward whose samples are not summed (their sum's non-zero
    /// cells are the union of theirs).
    /// </summary>
    public bool Sparse(string gradient) => !SumsSamples && FromStridedMaxPool(gradient, depth: 0);

    private bool FromStridedMaxPool(string value, int depth) =>
        depth < 4 && _producers.TryGetValue(value, out var node) && node.OpType switch
        {
            NativeOps.MaxPoolGrad => node.Domain == NativeOps.Domain
                                     && node.Attribute.FirstOrDefault(a => a.Name == "strides") is { Ints: [var rows, var columns] } && rows * columns >= 4,
            "Relu" => FromStridedMaxPool(node.Input[0], depth + 1),
            "Mul" => node.Input.Any(input => FromStridedMaxPool(input, depth + 1)),
            _ => false,
        };

    /// <summary>Which of its 3×3 convolutions (stride 1 or 2) run as <see cref="NativeOps.WinogradConv"/>, and so, merged, its forward's.</summary>
    public WinogradConvolutions Winograd { get; init; } = WinogradConvolutions.None;

    /// <summary>
    /// Whether ONNX Runtime's CPU provider will hold <paramref name="value"/> in its blocked (NCHWc)
    /// layout: a convolution's output, or a rectifier, product or sum of such values only (its
    /// layout transformer takes an elementwise op only when every operand is blocked, and a value
    /// enters the layout only through a convolution).
    /// </summary>
    public bool Blocked(string value) => _blocked.Contains(value);

    private bool KeepsBlocked(string opType, IReadOnlyList<string> inputs) => opType switch
    {
        "Conv" => true,
        "Relu" or "Clip" => _blocked.Contains(inputs[0]),
        "Mul" or "Add" or "Sum" => inputs.All(_blocked.Contains),
        _ => false,
    };

    /// <summary>Adds a node of the engine's own kernels (<see cref="NativeOps"/>) and returns its output's name.</summary>
    public string NativeNode(string opType, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        var output = Node(opType, inputs, attributes);
        _graph.Node[^1].Domain = NativeOps.Domain;
        return output;
    }

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs and returns their names.</summary>
    public string[] Nodes(string opType, IEnumerable<string> inputs, int outputCount, params AttributeProto[] attributes)
    {
        var first = Node(opType, inputs, attributes);
        var node = _graph.Node[^1];
        for (var o = 1; o < outputCount; o++) node.Output.Add($"{first}:{o}");
        return node.Output.ToArray();
    }

    /// <summary>
    /// The most nodes a backward may have. The largest real ones are ~1,500 (Swin-T, EfficientNet-V2-S);
    /// an untrusted model's chain of 8,000 nodes wrote 12,000, whose sessions took ONNX Runtime ~50 s
    /// to load. Larger models go to autograd, which is linear in their size.
    /// </summary>
    public const int MaxNodes = 10_000;

    /// <summary>The most values a matrix a rule makes up may hold (64 MB of float32); beyond, autograd takes the model.</summary>
    public const long MaxMadeMatrixValues = 1L << 24;

    /// <summary>
    /// A zeroed rows × columns matrix for a rule to fill (a resize's interpolation, LRN's channel
    /// band), refused where an untrusted model's sizes would make it larger than <see cref="MaxMadeMatrixValues"/>.
    /// </summary>
    /// <exception cref="NotSupportedException">It would be larger.</exception>
    public static float[] NewMatrix(long rows, long columns, string what) =>
        rows > 0 && columns > 0 && rows <= MaxMadeMatrixValues / columns
            ? new float[rows * columns]
            : throw new NotSupportedException($"{what} would be a {rows}×{columns} matrix");

    /// <summary>A float32 scalar constant (one initializer per value).</summary>
    public string Scalar(float value) => _scalars.TryGetValue(value, out var name) ? name : _scalars[value] = Constant(tensor(value));

    /// <summary>
    /// The sum of gradient contributions (one needs no node). Of two, where one is an input gradient
    /// a kernel of ours computed (<see cref="OwnInputGradient"/>), that kernel adds the other as its
    /// residual while it writes, and no sum is written: it moves after the other's producer.
    /// </summary>
    public string Sum(IReadOnlyList<string> parts)
    {
        if (parts.Count == 1) return parts[0];
        if (parts.Count == 2 && parts[0] != parts[1])
            for (var i = 0; i < 2; i++)
                if (OwnInputGradient(parts[i]) is { } kernel)
                {
                    AddFusedInput(kernel, FusedInputs(kernel.OpType).Residual, parts[1 - i]);
                    _graph.Node.Remove(kernel);
                    _graph.Node.Add(kernel);
                    return kernel.Output[0];
                }
        return Node("Sum", parts);
    }

    /// <summary>A float32 or int64 constant.</summary>
    public string Constant(Tensor value)
    {
        var name = $"{Prefix}constant_{_next++}";
        var integer = value.dtype == ScalarType.Int64;
        using var contiguous = value.to_type(integer ? ScalarType.Int64 : ScalarType.Float32).contiguous();
        var proto = new TensorProto { Name = name, DataType = (int)(integer ? DataType.Int64 : DataType.Float) };
        proto.Dims.AddRange(contiguous.shape);
        // Straight from libtorch's memory: a network's weights are tens of MB, and copying them
        // through a managed array first doubled the time to write its backward.
        proto.RawData = ByteString.CopyFrom(contiguous.bytes);
        _graph.Initializer.Add(proto);
        return name;
    }

    /// <summary>
    /// A node's constant input as the backward reads it: the model's own float32 initializer where
    /// the input is one holding the mirror's very values, shared with the forward instead of copied
    /// (a network's weights are most of its file: the merged graph holds them once, and neither
    /// process serialises them twice); otherwise a copy of the mirror's value.
    /// </summary>
    public string ConstantInput(GradientNode node, int input)
    {
        var (name, value) = (node.Inputs[input], node.Constants[input]!);
        if (!_weights.TryGetValue(name, out var weight) || !Holds(weight, value)) return Constant(value);
        if (_shared.Add(name)) _graph.Initializer.Add(weight);
        return name;
    }

    /// <summary>A node's input as the backward reads it: its constant (<see cref="ConstantInput"/>), or its value recorded in the forward.</summary>
    public string Operand(GradientNode node, int input) =>
        node.Constants[input] is not null ? ConstantInput(node, input) : Recorded(node.Inputs[input]);

    /// <summary>Whether <paramref name="weight"/> holds exactly <paramref name="value"/>'s float32 values, bit for bit (compared in place, no copy).</summary>
    private static bool Holds(TensorProto weight, Tensor value)
    {
        if (value.dtype != ScalarType.Float32 || !weight.Dims.SequenceEqual(value.shape)) return false;
        using var contiguous = value.contiguous();
        var bytes = contiguous.bytes;
        if (weight.RawData.Length > 0)
        {
            var same = weight.RawData.Span.SequenceEqual(bytes);
            GC.KeepAlive(weight); // its raw data may be a view of a mapped file (MappedFile)
            return same;
        }
        var floats = MemoryMarshal.Cast<byte, int>(bytes);
        if (weight.FloatData.Count != floats.Length) return false;
        for (var i = 0; i < floats.Length; i++)
            if (BitConverter.SingleToInt32Bits(weight.FloatData[i]) != floats[i]) return false;
        return true;
    }

    /// <summary>
    /// A convolution's weight [out, in/group, k…] as the weight of its transpose at stride 1
    /// ([in, out/group, k…], the kernel flipped), written as nodes over <paramref name="weight"/>:
    /// ONNX Runtime folds them into one initializer when it builds the session.
    /// </summary>
    public string FlippedKernel(string weight, long[] shape, long group)
    {
        var (outputs, inputsPerGroup, kernel) = (shape[0], shape[1], shape[2..]);
        var spatial = Enumerable.Range(2, kernel.Length).Select(d => (long)d).ToArray();
        var swapped = group == 1
            ? Node("Transpose", [weight], Attribute("perm", [1, 0, .. spatial]))
            : Node("Reshape", [
                Node("Transpose", [Node("Reshape", [weight, Ints([group, outputs / group, inputsPerGroup, .. kernel])])],
                    Attribute("perm", [0, 2, 1, .. spatial.Select(d => d + 1)])),
                Ints([group * inputsPerGroup, outputs / group, .. kernel])]);
        var reversed = spatial.Select(_ => -1L).ToArray();
        return Node("Slice", [swapped, Ints(reversed), Ints(spatial.Select(_ => long.MinValue).ToArray()), Ints(spatial), Ints(reversed)]);
    }

    /// <summary>An int64 vector constant (shapes, axes).</summary>
    public string Ints(params long[] values) => Constant(tensor(values));

    /// <summary>A value (a gradient, the seed) reshaped from <paramref name="from"/> to <paramref name="to"/> (−1: the batch dimension), or as is when they agree.</summary>
    public string Reshape(string value, long[] from, long[] to) =>
        from.SequenceEqual(to) ? value : Node("Reshape", [value, Ints(KeepingBatch(from, to))]);

    /// <summary>
    /// <paramref name="to"/> with a batch dimension that leads both shapes, over the same number of
    /// elements per sample, written 0 (Reshape copies the input's): ONNX Runtime's shape inference
    /// then keeps the batch's symbol, where −1 makes a new one. Operands whose batch symbols differ
    /// do not count as the same shape to its blocked-layout transforms (<see cref="Rectifier.Gradient"/>).
    /// </summary>
    private static long[] KeepingBatch(long[] from, long[] to) =>
        from is [< 0, .. var rest] && to is [< 0, .. var others] && rest.All(d => d > 0) && others.All(d => d > 0)
            && rest.Aggregate(1L, (p, d) => p * d) == others.Aggregate(1L, (p, d) => p * d)
            ? [0, .. others] : to;

    /// <summary>A broadcast result's gradient summed back to one operand's shape.</summary>
    public string SumToShape(string gradient, long[] result, long[] operand)
    {
        var lead = result.Length - operand.Length;
        var axes = Enumerable.Range(0, result.Length)
            .Where(a => a < lead || operand[a - lead] == 1 && result[a] != 1)
            .Select(a => (long)a).ToArray();
        if (axes.Length == 0) return gradient;
        var summed = Node("ReduceSum", [gradient, Ints(axes)], Attribute("keepdims", 1));
        return Reshape(summed, [.. result.Select((d, a) => axes.Contains(a) ? 1 : d)], operand);
    }

    public static AttributeProto Attribute(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Attribute(string name, long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto Attribute(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attribute(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>
    /// The model, its output (<see cref="InputGradient"/>) the sum of the gradient contributions to
    /// the input (or to the layer the backward stops at). Nodes and recorded values the output does
    /// not need are dropped, so a backward that stops at a layer reads and computes only its part.
    /// </summary>
    /// <param name="summed">Whether the output is summed over the batch ([1, ...]; <see cref="SummedOverSamples"/>), for a free batch dimension only.</param>
    /// <exception cref="NotSupportedException">It would have more than <see cref="MaxNodes"/> nodes.</exception>
    public ModelProto ToModel(IReadOnlyList<string> gradients, long[] shape, bool summed = false)
    {
        var sum = Sum(gradients);
        if (summed)
        {
            if (shape is not [< 0, ..]) throw new ArgumentException("Only a free batch dimension can be summed.", nameof(summed));
            sum = SummedOverSamples(sum, new Dictionary<string, string>(StringComparer.Ordinal), Constants());
            shape = [1, .. shape[1..]];
        }
        Output(sum, InputGradient, DataType.Float, shape);
        Prune();
        if (_graph.Node.Count > MaxNodes)
            throw new NotSupportedException($"its backward would have {_graph.Node.Count} nodes (at most {MaxNodes}: the time ONNX Runtime takes to load a graph grows with the square of its size)");
        var model = new ModelProto { IrVersion = 8, ProducerName = "SaliencyService backward", Graph = _graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        if (_graph.Node.Any(n => n.Domain == NativeOps.Domain)) model.OpsetImport.Add(new OperatorSetIdProto { Domain = NativeOps.Domain, Version = 1 });
        return model;
    }

    /// <summary>Drops what the output does not depend on: nodes, initializers, recorded inputs.</summary>
    private void Prune()
    {
        var needed = new HashSet<string>(StringComparer.Ordinal) { InputGradient, Chosen };
        var kept = new List<NodeProto>();
        foreach (var node in _graph.Node.Reverse())
        {
            if (!node.Output.Any(needed.Contains)) continue;
            kept.Add(node);
            needed.UnionWith(node.Input);
        }
        kept.Reverse();
        _graph.Node.Clear();
        _graph.Node.AddRange(kept);
        var initializers = _graph.Initializer.Where(i => needed.Contains(i.Name)).ToList();
        _graph.Initializer.Clear();
        _graph.Initializer.AddRange(initializers);
        var inputs = _graph.Input.Where(i => needed.Contains(i.Name)).ToList();
        _graph.Input.Clear();
        _graph.Input.AddRange(inputs);
        _recorded.RemoveAll(name => !needed.Contains(name));
        _maxPoolIndices.RemoveAll(output => !needed.Contains(IndicesOf(output)));
    }

    /// <summary>Makes <paramref name="value"/> a graph output under the fixed <paramref name="name"/> a run fetches.</summary>
    private void Output(string value, string name, DataType type, long[] shape)
    {
        _graph.Node.Add(new NodeProto { OpType = "Identity", Name = name, Input = { value }, Output = { name } });
        _graph.Output.Add(ValueInfo(name, type, shape));
    }

    private void AddInput(string name, DataType type, long[] shape)
    {
        _inputs.Add(name);
        _graph.Input.Add(ValueInfo(name, type, shape));
    }

    /// <summary>A graph input or output; −1 in <paramref name="shape"/> is the batch dimension, a null shape leaves it to inference.</summary>
    public static ValueInfoProto ValueInfo(string name, DataType type, long[]? shape)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (shape is not null)
        {
            tensorType.Shape = new TensorShapeProto();
            foreach (var d in shape)
                tensorType.Shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "batch" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    /// <summary>The ONNX element type of the values the backward exchanges (ONNX Runtime's enum has the same numbers).</summary>
    public static DataType ElementType(ScalarType type) => type switch
    {
        ScalarType.Float32 => DataType.Float,
        ScalarType.Int64 => DataType.Int64,
        ScalarType.Bool => DataType.Bool,
        _ => throw new NotSupportedException($"a {type} value cannot be handed between the forward and the backward"),
    };
}
