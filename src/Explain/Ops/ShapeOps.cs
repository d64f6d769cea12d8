using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>
/// Shapes, layouts, indexing, constants. Shape-valued tensors are int64 libtorch tensors, so
/// shape arithmetic (Shape → Gather → Concat → Reshape) runs like any other computation.
/// </summary>
internal static class ShapeOps
{
    /// <summary>Nodes that only reshape their first input pass the gradient back in that input's shape.</summary>
    [OnnxGradient("Identity")]
    [OnnxGradient("Dropout")]
    [OnnxGradient("Flatten")]
    [OnnxGradient("Reshape")]
    [OnnxGradient("Squeeze")]
    [OnnxGradient("Unsqueeze")]
    private static GradientRule ReshapeGradient(OpContext node) => new((graph, n) =>
        n.Inputs.Select((_, i) => i == 0 ? graph.Reshape(n.OutputGradients[0]!, n.OutputShapes[0]!, n.InputShapes[0]!) : null).ToArray());

    [OnnxOp("Identity")]
    private static OpKernel Identity(OpContext node) => (x, _) => [x[0]!];

    /// <summary>Inference: the identity (a mask output, when asked for, is all ones).</summary>
    [OnnxOp("Dropout")]
    private static OpKernel Dropout(OpContext node) => (x, _) => [x[0]!, ones_like(x[0]!, ScalarType.Bool)];

    [OnnxOp("Constant")]
    private static OpKernel Constant(OpContext node)
    {
        var a = node.Attributes;
        Tensor value =
            a.Tensor("value") is { } t ? TensorReader.ToTorch(t)
            : a.Has("value_float") ? tensor(a.Float("value_float", 0))
            : a.Floats("value_floats") is { } fs ? tensor(fs)
            : a.Has("value_int") ? tensor(a.Int("value_int", 0))
            : a.Ints("value_ints") is { } ls ? tensor(ls)
            : throw node.Unsupported("a Constant without a numeric value");
        var owned = node.Own(value);
        return (_, _) => [owned];
    }

    [OnnxOp("ConstantOfShape", 9)]
    private static OpKernel ConstantOfShape(OpContext node)
    {
        var proto = node.Attributes.Tensor("value");
        var value = node.Own(proto is null ? tensor(0f) : TensorReader.ToTorch(proto).reshape(1));
        return (x, _) => [value.reshape(1).expand(OpHelpers.Longs(x[0]!)).contiguous()];
    }

    /// <summary>Between floating types the gradient passes (cast back); from integers none flows.</summary>
    [OnnxGradient("Cast")]
    private static GradientRule CastGradient(OpContext node) => new((graph, n) => [n.OutputGradients[0]]);

    [OnnxOp("Cast", 6)]
    private static OpKernel Cast(OpContext node)
    {
        var type = TensorReader.ComputeType(node.Attributes.Int("to", 1));
        if (type == ScalarType.Float32) type = node.FloatType;
        return (x, _) => [x[0]!.to_type(type)];
    }

    [OnnxOp("Shape")]
    private static OpKernel Shape(OpContext node)
    {
        var start = node.Attributes.Int("start", 0);
        var end = node.Attributes.Has("end") ? node.Attributes.Int("end", 0) : (long?)null;
        return (x, _) =>
        {
            var shape = x[0]!.shape;
            var from = Math.Clamp(OpHelpers.Axis(start, shape.Length), 0, shape.Length);
            var to = Math.Clamp(end is { } e ? OpHelpers.Axis(e, shape.Length) : shape.Length, from, shape.Length);
            return [tensor(shape[(int)from..(int)to])];
        };
    }

    [OnnxOp("Size")]
    private static OpKernel Size(OpContext node) => (x, _) => [tensor(x[0]!.NumberOfElements)];

    /// <summary>[d0·…·d(axis−1), d(axis)·…·dn].</summary>
    [OnnxOp("Flatten")]
    private static OpKernel Flatten(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 1);
        return (x, _) =>
        {
            var shape = x[0]!.shape;
            var a = (int)OpHelpers.Axis(axis, shape.Length);
            return [x[0]!.reshape(shape[..a].Aggregate(1L, (p, d) => p * d), shape[a..].Aggregate(1L, (p, d) => p * d))];
        };
    }

    /// <summary>0 copies the input's dimension (unless allowzero), −1 is inferred.</summary>
    [OnnxOp("Reshape", 5)]
    private static OpKernel Reshape(OpContext node)
    {
        var allowZero = node.Attributes.Int("allowzero", 0) != 0;
        return (x, _) =>
        {
            var input = x[0]!;
            var shape = OpHelpers.Longs(x[1]!);
            for (var i = 0; i < shape.Length; i++)
                if (shape[i] == 0 && !allowZero) shape[i] = input.shape[i];
            return [input.reshape(shape)];
        };
    }

    [OnnxOp("Transpose")]
    private static OpKernel Transpose(OpContext node)
    {
        var perm = node.Attributes.Ints("perm");
        return (x, _) => [x[0]!.permute(perm ?? Enumerable.Range(0, (int)x[0]!.dim()).Reverse().Select(d => (long)d).ToArray())];
    }

    /// <summary>The gradient split back into the parts' sizes along the axis.</summary>
    [OnnxGradient("Concat")]
    private static GradientRule ConcatGradient(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 0);
        return new((graph, n) =>
        {
            var present = Enumerable.Range(0, n.Inputs.Length).Where(i => n.InputShapes[i] is not null).ToArray();
            var rank = n.OutputShapes[0]!.Length;
            var a = (int)OpHelpers.Axis(axis, rank);
            var sizes = present.Select(i => n.InputShapes[i]!.Length == rank ? n.InputShapes[i]![a] : 1).ToArray();
            var parts = graph.Nodes("Split", [n.OutputGradients[0]!, graph.Ints(sizes)], present.Length, BackwardGraph.Attribute("axis", a));
            var gradients = new string?[n.Inputs.Length];
            for (var k = 0; k < present.Length; k++) gradients[present[k]] = parts[k];
            return gradients;
        });
    }

    /// <summary>The gradient transposed back by the inverse permutation.</summary>
    [OnnxGradient("Transpose")]
    private static GradientRule TransposeGradient(OpContext node)
    {
        var perm = node.Attributes.Ints("perm");
        return new((graph, n) =>
        {
            var order = perm ?? Enumerable.Range(0, n.InputShapes[0]!.Length).Reverse().Select(d => (long)d).ToArray();
            var inverse = new long[order.Length];
            for (var i = 0; i < order.Length; i++) inverse[order[i]] = i;
            return [graph.Node("Transpose", [n.OutputGradients[0]!], BackwardGraph.Attribute("perm", inverse))];
        });
    }

    [OnnxOp("Concat", 4)]
    private static OpKernel Concat(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 0);
        return (x, _) =>
        {
            var parts = x.Where(t => t is not null).Select(t => t!).ToArray();
            var type = parts.FirstOrDefault(p => p.is_floating_point())?.dtype ?? parts[0].dtype;
            return [cat(parts.Select(p => p.dtype == type ? p : p.to_type(type)).ToArray(), OpHelpers.Axis(axis, parts[0].dim()))];
        };
    }

    /// <summary>Sizes from the attribute (before 13), the input (13+), or equal parts (num_outputs, 18+).</summary>
    [OnnxOp("Split", 2)]
    private static OpKernel Split(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 0);
        var attributeSizes = node.Attributes.Ints("split");
        var outputs = node.Node.Output.Count;
        return (x, _) =>
        {
            var input = x[0]!;
            var a = OpHelpers.Axis(axis, input.dim());
            var sizes = node.Opset >= 13 ? (x.Length > 1 && x[1] is { } s ? OpHelpers.Longs(s) : null) : attributeSizes;
            if (sizes is null)
            {
                var chunk = (input.shape[a] + outputs - 1) / outputs; // the last part may be smaller (18+)
                sizes = Enumerable.Range(0, outputs).Select(i => Math.Min(chunk, input.shape[a] - i * chunk)).ToArray();
            }
            return input.split(sizes, a);
        };
    }

    /// <summary>The parts' gradients side by side again (zeros for a part the score does not read).</summary>
    [OnnxGradient("Split")]
    private static GradientRule SplitGradient(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 0);
        return new((graph, n) =>
        {
            var parts = n.OutputGradients.Select((g, i) => g ?? graph.Node("Mul", [graph.Recorded(n.Outputs[i]), graph.Scalar(0)])).ToArray();
            return [graph.Node("Concat", parts, BackwardGraph.Attribute("axis", OpHelpers.Axis(axis, n.InputShapes[0]!.Length))), null];
        });
    }

    /// <summary>
    /// Positive steps, with bounds that are constants or computed from shapes alone: the gradient
    /// put back at the sliced positions, axis by axis, zeros elsewhere. A strided axis (Swin's patch
    /// merging, x[:, 1::2]) interleaves it with zeros: a new axis padded to the step, merged back.
    /// </summary>
    [OnnxGradient("Slice")]
    private static GradientRule SliceGradient(OpContext node) => new((graph, n) =>
    {
        long[]? Bounds(int i, string attribute) => node.Opset >= 10
            ? i < n.Constants.Length && n.Constants[i] is { } c ? OpHelpers.Longs(c) : null
            : node.Attributes.Ints(attribute);
        var starts = Bounds(1, "starts");
        var ends = Bounds(2, "ends");
        var axes = Bounds(3, "axes");
        var steps = node.Opset >= 10 ? Bounds(4, "") : null;
        if (starts is null || ends is null || (node.Opset >= 10 && node.HasInput(3) && axes is null) || (node.Opset >= 10 && node.HasInput(4) && steps is null)
            || steps?.Any(step => step < 1) == true)
            throw new NotSupportedException("a Slice with computed bounds or negative steps has no backward rule");
        var input = n.InputShapes[0]!;
        var shape = n.OutputShapes[0]!.ToArray();
        var gradient = n.OutputGradients[0]!;
        for (var i = 0; i < starts.Length; i++)
        {
            var axis = OpHelpers.Axis(axes?[i] ?? i, input.Length);
            var size = input[axis];
            if (size < 0) throw new NotSupportedException("a Slice of the batch dimension has no backward rule");
            var step = steps?[i] ?? 1;
            var start = Math.Clamp(starts[i] < 0 ? starts[i] + size : starts[i], 0, size);
            var taken = shape[axis];
            if (step > 1 && taken > 0)
            {
                var spread = shape.ToArray();
                spread[axis] = taken * step;
                var pads = new long[2 * (shape.Length + 1)];
                pads[shape.Length + 1 + axis + 1] = step - 1;
                gradient = graph.Node("Reshape", [graph.Node("Pad", [graph.Node("Unsqueeze", [gradient, graph.Ints(axis + 1)]), graph.Ints(pads)]), graph.Ints(spread)]);
                taken *= step;
            }
            var around = new long[2 * shape.Length];
            around[axis] = start;
            around[shape.Length + axis] = size - start - taken; // negative crops the zeros a last stride left past the end
            gradient = graph.Node("Pad", [gradient, graph.Ints(around)]);
            shape[axis] = size;
        }
        return [gradient, null, null, null, null];
    });

    /// <summary>Starts/ends/axes/steps as attributes (before 10) or inputs (10+), clamped as ONNX says.</summary>
    [OnnxOp("Slice")]
    private static OpKernel SliceAttributes(OpContext node)
    {
        var starts = node.Attributes.Ints("starts") ?? throw node.Unsupported("missing starts");
        var ends = node.Attributes.Ints("ends") ?? throw node.Unsupported("missing ends");
        var axes = node.Attributes.Ints("axes");
        return (x, _) => [Slice(x[0]!, starts, ends, axes, null)];
    }

    [OnnxOp("Slice", 10)]
    private static OpKernel SliceInputs(OpContext node) => (x, _) =>
        [Slice(x[0]!, OpHelpers.Longs(x[1]!), OpHelpers.Longs(x[2]!),
            x.Length > 3 && x[3] is { } axes ? OpHelpers.Longs(axes) : null,
            x.Length > 4 && x[4] is { } steps ? OpHelpers.Longs(steps) : null)];

    private static Tensor Slice(Tensor input, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        var result = input;
        for (var i = 0; i < starts.Length; i++)
        {
            var axis = OpHelpers.Axis(axes?[i] ?? i, input.dim());
            var size = input.shape[axis];
            var step = steps?[i] ?? 1;
            if (step == 0) throw new UnsupportedOperatorException("Slice", 0, "a step of 0");
            var start = starts[i] < 0 ? starts[i] + size : starts[i];
            var end = ends[i] < 0 ? ends[i] + size : ends[i];
            if (step > 0)
            {
                start = Math.Clamp(start, 0, size);
                end = Math.Clamp(end, 0, size);
                result = end > start ? result.slice(axis, start, end, step) : result.narrow(axis, 0, 0);
            }
            else
            {
                start = Math.Clamp(start, -1, size - 1);
                end = Math.Clamp(end, -1, size - 1);
                var count = start > end ? (start - end - 1) / -step + 1 : 0;
                var indices = Scalars.Range(start, start + count * step, step, ScalarType.Int64);
                result = result.index_select(axis, indices);
            }
        }
        return result;
    }

    [OnnxOp("Squeeze")]
    private static OpKernel SqueezeAttribute(OpContext node)
    {
        var axes = node.Attributes.Ints("axes");
        return (x, _) => [Squeeze(x[0]!, axes)];
    }

    [OnnxOp("Squeeze", 13)]
    private static OpKernel SqueezeInput(OpContext node) => (x, _) =>
        [Squeeze(x[0]!, x.Length > 1 && x[1] is { } axes ? OpHelpers.Longs(axes) : null)];

    private static Tensor Squeeze(Tensor input, long[]? axes)
    {
        if (axes is null) return input.squeeze();
        var drop = axes.Select(a => OpHelpers.Axis(a, input.dim())).ToHashSet();
        return input.reshape(input.shape.Where((_, i) => !drop.Contains(i)).ToArray());
    }

    [OnnxOp("Unsqueeze")]
    private static OpKernel UnsqueezeAttribute(OpContext node)
    {
        var axes = node.Attributes.Ints("axes") ?? throw node.Unsupported("missing axes");
        return (x, _) => [Unsqueeze(x[0]!, axes)];
    }

    [OnnxOp("Unsqueeze", 13)]
    private static OpKernel UnsqueezeInput(OpContext node) => (x, _) => [Unsqueeze(x[0]!, OpHelpers.Longs(x[1]!))];

    /// <summary>Axes index the output, whose rank is the input's plus the number of axes.</summary>
    private static Tensor Unsqueeze(Tensor input, long[] axes)
    {
        var rank = input.dim() + axes.Length;
        var inserted = axes.Select(a => OpHelpers.Axis(a, rank)).ToHashSet();
        var shape = new long[rank];
        var next = 0;
        for (var i = 0; i < rank; i++) shape[i] = inserted.Contains(i) ? 1 : input.shape[next++];
        return input.reshape(shape);
    }

    /// <summary>
    /// A scalar index (constant, or computed from shapes alone): the gradient put back at its place
    /// along the axis, zeros elsewhere (ViT's class token, Swin's q, k and v).
    /// </summary>
    [OnnxGradient("Gather")]
    private static GradientRule GatherGradient(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 0);
        return new((graph, n) =>
        {
            if (n.Constants[1] is not { } index || index.dim() != 0) throw new NotSupportedException("a Gather of several or computed indices has no backward rule");
            var shape = n.InputShapes[0]!;
            var a = OpHelpers.Axis(axis, shape.Length);
            var size = shape[a];
            if (size < 0) throw new NotSupportedException("a Gather along the batch dimension has no backward rule");
            var at = index.to_type(ScalarType.Int64).item<long>();
            var position = at < 0 ? at + size : at;
            var pads = new long[2 * shape.Length];
            pads[a] = position;
            pads[shape.Length + a] = size - position - 1;
            return [graph.Node("Pad", [graph.Node("Unsqueeze", [n.OutputGradients[0]!, graph.Ints(a)]), graph.Ints(pads)]), null];
        });
    }

    /// <summary>Indices may be negative; a scalar index removes the axis.</summary>
    [OnnxOp("Gather")]
    private static OpKernel Gather(OpContext node)
    {
        var axis = node.Attributes.Int("axis", 0);
        return (x, _) =>
        {
            var data = x[0]!;
            var a = OpHelpers.Axis(axis, data.dim());
            var indices = x[1]!.to_type(ScalarType.Int64);
            indices = where(indices.lt(Scalars.Zero), indices.Plus(data.shape[a]), indices);
            var picked = data.index_select(a, indices.flatten());
            long[] shape = [.. data.shape[..(int)a], .. indices.shape, .. data.shape[(int)(a + 1)..]];
            return [picked.reshape(shape)];
        };
    }

    [OnnxOp("Expand", 8)]
    private static OpKernel Expand(OpContext node) => (x, _) =>
    {
        var input = x[0]!;
        var target = OpHelpers.Longs(x[1]!);
        // Bidirectional broadcast: multiplying by ones of the target shape.
        return [input * ones(target, input.dtype)];
    };

    [OnnxGradient("Expand")]
    private static GradientRule ExpandGradient(OpContext node) => new((graph, n) =>
        [graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, n.InputShapes[0]!), null]);

    [OnnxOp("Tile", 6)]
    private static OpKernel Tile(OpContext node) => (x, _) => [x[0]!.tile(OpHelpers.Longs(x[1]!))];

    /// <summary>
    /// Each axis's copies summed: the gradient reshaped to [r₀, d₀, r₁, d₁, ...] (copy k of axis i
    /// holds cells k·dᵢ to (k+1)·dᵢ − 1), then summed over the copies' axes. Constant repeats; the
    /// batch axis not repeated.
    /// </summary>
    [OnnxGradient("Tile")]
    private static GradientRule TileGradient(OpContext node) => new((graph, n) =>
    {
        var repeats = n.Constants[1] is { } r ? OpHelpers.Longs(r) : throw new NotSupportedException("its repeats are computed from the input's values");
        var shape = n.InputShapes[0]!;
        if (shape.Where((d, i) => d < 0 && repeats[i] != 1).Any()) throw new NotSupportedException("it repeats the batch dimension");
        var split = graph.Node("Reshape", [n.OutputGradients[0]!, graph.Ints([.. shape.Zip(repeats).SelectMany(p => new[] { p.Second, p.First })])]);
        var copies = graph.Ints([.. Enumerable.Range(0, shape.Length).Select(i => 2L * i)]);
        return [graph.Node("ReduceSum", [split, copies], BackwardGraph.Attribute("keepdims", 0)), null];
    });

    /// <summary>fmod = 0: the remainder takes the divisor's sign (integers); fmod = 1: the dividend's, as C's fmod.</summary>
    [OnnxOp("Mod", 10)]
    private static OpKernel Mod(OpContext node)
    {
        var fmod = node.Attributes.Int("fmod", 0) != 0;
        return (x, _) => [fmod ? x[0]!.fmod(x[1]!) : x[0]!.remainder(x[1]!)];
    }

    /// <summary>
    /// The updates take the gradient where they were written (GatherND of it); the data takes it
    /// everywhere else (the same scatter, of zeros). ONNX leaves duplicate indices undefined.
    /// </summary>
    [OnnxGradient("ScatterND")]
    private static GradientRule ScatterNdGradient(OpContext node) => new((graph, n) =>
    {
        var (g, indices) = (n.OutputGradients[0]!, graph.Operand(n, 1));
        var updates = graph.Node("GatherND", [g, indices]);
        var zeros = graph.Node("ConstantOfShape", [graph.Node("Shape", [updates])]);
        return [n.Wanted[0] ? graph.Node("ScatterND", [g, indices, zeros]) : null, null, n.Wanted[2] ? updates : null];
    });

    /// <summary>
    /// a − q·b with q = a / b rounded toward zero (fmod = 1) or down: ∂a = G, ∂b = −G·q, as
    /// libtorch's fmod and remainder; each summed back to its shape.
    /// </summary>
    [OnnxGradient("Mod")]
    private static GradientRule ModGradient(OpContext node)
    {
        var fmod = node.Attributes.Int("fmod", 0) != 0;
        return new((graph, n) =>
        {
            var g = n.OutputGradients[0]!;
            string? divisor = null;
            if (n.Wanted[1])
            {
                var ratio = graph.Node("Div", [graph.Operand(n, 0), graph.Operand(n, 1)]);
                var q = fmod ? graph.Node("Mul", [graph.Node("Sign", [ratio]), graph.Node("Floor", [graph.Node("Abs", [ratio])])]) : graph.Node("Floor", [ratio]);
                divisor = graph.SumToShape(graph.Node("Neg", [graph.Node("Mul", [g, q])]), n.OutputShapes[0]!, n.InputShapes[1]!);
            }
            return [n.Wanted[0] ? graph.SumToShape(g, n.OutputShapes[0]!, n.InputShapes[0]!) : null, divisor];
        });
    }

    /// <summary>A copy of the data with the slices the last index axis names replaced by the updates (no reduction).</summary>
    [OnnxOp("ScatterND", 11)]
    private static OpKernel ScatterNd(OpContext node)
    {
        if (node.Attributes.String("reduction", "none") != "none") throw node.Unsupported("a reduction");
        return (x, _) =>
        {
            var data = x[0]!;
            var indices = x[1]!.to_type(ScalarType.Int64);
            var depth = indices.shape[^1];
            var rest = data.shape[(int)depth..];
            var dims = tensor(data.shape[..(int)depth]);
            var flat = indices.reshape(-1, depth);
            flat = where(flat.lt(Scalars.Zero), flat.Plus(dims), flat);
            var strides = data.shape[..(int)depth].Select((_, i) => data.shape[(i + 1)..(int)depth].Aggregate(1L, (p, d) => p * d)).ToArray();
            var linear = (flat * tensor(strides)).sum(1);
            var result = data.clone().reshape([-1, .. rest]);
            result.index_copy_(0, linear, x[2]!.reshape([-1, .. rest]).to_type(data.dtype));
            return [result.reshape(data.shape)];
        };
    }

    [OnnxOp("Range", 11)]
    private static OpKernel Range(OpContext node) => (x, _) =>
    {
        var type = x[0]!.dtype;
        var (start, limit, delta) = (OpHelpers.Doubles(x[0]!)[0], OpHelpers.Doubles(x[1]!)[0], OpHelpers.Doubles(x[2]!)[0]);
        return [Scalars.Range(start, limit, delta, ScalarType.Float64).to_type(type)];
    };
}
