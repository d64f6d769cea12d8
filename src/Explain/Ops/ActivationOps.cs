using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Rectifiers and other pointwise non-linearities.</summary>
internal static class ActivationOps
{
    [OnnxOp("Relu")]
    private static OpKernel Relu(OpContext node) => (x, rule) => [Rectifier.Apply(x[0]!, double.PositiveInfinity, rule)];

    /// <summary>Rectifiers (Relu, Clip with min 0) back-propagate from their recorded output.</summary>
    [OnnxGradient("Relu")]
    [OnnxGradient("Clip")]
    private static GradientRule? RectifierGradient(OpContext node) => Rectifier.UpperBound(node) is { } upper ? Rectifier.Gradient(upper) : null;

    /// <summary>Clip with min 0 is a rectifier (ReLU6); any other Clip is a plain clamp.</summary>
    [OnnxOp("Clip")]
    private static OpKernel ClipAttributes(OpContext node)
    {
        var upper = Rectifier.UpperBound(node);
        if (upper is { } bound) return (x, rule) => [Rectifier.Apply(x[0]!, bound, rule)];
        var min = node.Attributes.Float("min", float.NegativeInfinity);
        var max = node.Attributes.Float("max", float.PositiveInfinity);
        return (x, _) => [x[0]!.Clamp(min, max)];
    }

    [OnnxOp("Clip", 11)]
    private static OpKernel ClipInputs(OpContext node)
    {
        var upper = Rectifier.UpperBound(node);
        if (upper is { } bound) return (x, rule) => [Rectifier.Apply(x[0]!, bound, rule)];
        return (x, _) =>
        {
            var result = x[0]!;
            if (x.Length > 1 && x[1] is { } min) result = torch.maximum(result, min.to_type(result.dtype));
            if (x.Length > 2 && x[2] is { } max) result = torch.minimum(result, max.to_type(result.dtype));
            return [result];
        };
    }

    [OnnxOp("LeakyRelu")]
    private static OpKernel LeakyRelu(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 0.01f);
        return (x, _) => [Scalars.With(alpha, slope => x[0]!.leaky_relu(slope))];
    }

    /// <summary>1 above 0, alpha at and below (as PyTorch's backward): a plain non-linearity, not a rectifier gate.</summary>
    [OnnxGradient("LeakyRelu")]
    private static GradientRule LeakyReluGradient(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 0.01f);
        return new((graph, n) =>
        {
            var g = n.OutputGradients[0]!;
            return [graph.Node("Where", [graph.Node("Greater", [graph.Recorded(n.Inputs[0]), graph.Scalar(0)]), g, graph.Node("Mul", [g, graph.Scalar(alpha)])])];
        });
    }

    /// <summary>Elu: 1 above 0, alpha·eˣ at and below; Selu: gamma times the same with its own alpha.</summary>
    [OnnxGradient("Elu")]
    [OnnxGradient("Selu")]
    private static GradientRule ExponentialUnitGradient(OpContext node)
    {
        var selu = node.OpType == "Selu";
        var alpha = node.Attributes.Float("alpha", selu ? 1.67326319217681884765625f : 1f);
        var gamma = selu ? node.Attributes.Float("gamma", 1.05070102214813232421875f) : 1f;
        return new((graph, n) =>
        {
            var x = graph.Recorded(n.Inputs[0]);
            var below = graph.Node("Mul", [graph.Node("Exp", [x]), graph.Scalar(alpha * gamma)]);
            var slope = graph.Node("Where", [graph.Node("Greater", [x, graph.Scalar(0)]), graph.Scalar(gamma), below]);
            return [graph.Node("Mul", [n.OutputGradients[0]!, slope])];
        });
    }

    /// <summary>softplus'(x) = σ(x).</summary>
    [OnnxGradient("Softplus")]
    private static GradientRule SoftplusGradient(OpContext node) => new((graph, n) =>
        [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Sigmoid", [graph.Recorded(n.Inputs[0])])])]);

    /// <summary>softsign'(x) = 1 / (1 + |x|)².</summary>
    [OnnxGradient("Softsign")]
    private static GradientRule SoftsignGradient(OpContext node) => new((graph, n) =>
    {
        var denominator = graph.Node("Add", [graph.Scalar(1), graph.Node("Abs", [graph.Recorded(n.Inputs[0])])]);
        return [graph.Node("Div", [n.OutputGradients[0]!, graph.Node("Mul", [denominator, denominator])])];
    });

    /// <summary>Slope broadcasts unidirectionally (NumPy rules) onto x.</summary>
    [OnnxOp("PRelu")]
    private static OpKernel PRelu(OpContext node) => (x, _) => [torch.where(x[0]!.lt(Scalars.Zero), x[0]! * x[1]!, x[0]!)];

    /// <summary>The slope below 0, 1 at and above (as the kernel above); for a constant slope (a learned one is a weight).</summary>
    [OnnxGradient("PRelu")]
    private static GradientRule? PReluGradient(OpContext node) => node.Constant(1) is null ? null : new((graph, n) =>
    {
        var g = n.OutputGradients[0]!;
        var below = graph.Node("Mul", [g, graph.Constant(n.Constants[1]!)]);
        return [graph.Node("Where", [graph.Node("Less", [graph.Recorded(n.Inputs[0]), graph.Scalar(0)]), below, g]), null];
    });

    [OnnxOp("Elu")]
    private static OpKernel Elu(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 1f);
        return (x, _) => [Scalars.With(alpha, a => x[0]!.elu(a, Scalars.One, Scalars.One))];
    }

    [OnnxOp("Selu")]
    private static OpKernel Selu(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 1.67326319217681884765625f);
        var gamma = node.Attributes.Float("gamma", 1.05070102214813232421875f);
        return (x, _) => [torch.where(x[0]!.gt(Scalars.Zero), x[0]!, x[0]!.expm1().Times(alpha)).Times(gamma)];
    }

    [OnnxOp("Sigmoid")]
    private static OpKernel Sigmoid(OpContext node) => (x, _) => [x[0]!.sigmoid()];

    /// <summary>σ'(x) = y·(1 − y), from the recorded output.</summary>
    [OnnxGradient("Sigmoid")]
    private static GradientRule SigmoidGradient(OpContext node) => new((graph, n) =>
    {
        var y = graph.Recorded(n.Outputs[0]);
        return [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Mul", [y, graph.Node("Sub", [graph.Scalar(1), y])])])];
    });

    /// <summary>tanh'(x) = 1 − y².</summary>
    [OnnxGradient("Tanh")]
    private static GradientRule TanhGradient(OpContext node) => new((graph, n) =>
    {
        var y = graph.Recorded(n.Outputs[0]);
        return [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Sub", [graph.Scalar(1), graph.Node("Mul", [y, y])])])];
    });

    /// <summary>alpha where 0 &lt; alpha·x + beta &lt; 1, else 0.</summary>
    [OnnxGradient("HardSigmoid")]
    private static GradientRule HardSigmoidGradient(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 0.2f);
        var beta = node.Attributes.Float("beta", 0.5f);
        return new((graph, n) =>
        {
            var z = graph.Node("Add", [graph.Node("Mul", [graph.Recorded(n.Inputs[0]), graph.Scalar(alpha)]), graph.Scalar(beta)]);
            var inside = graph.Node("And", [graph.Node("Greater", [z, graph.Scalar(0)]), graph.Node("Less", [z, graph.Scalar(1)])]);
            return [graph.Node("Where", [inside, graph.Node("Mul", [n.OutputGradients[0]!, graph.Scalar(alpha)]), graph.Scalar(0)])];
        });
    }

    /// <summary>0 below −3, 1 above 3, (2x + 3)/6 between.</summary>
    [OnnxGradient("HardSwish")]
    private static GradientRule HardSwishGradient(OpContext node) => new((graph, n) =>
    {
        var x = graph.Recorded(n.Inputs[0]);
        var slope = graph.Node("Add", [graph.Node("Mul", [x, graph.Scalar(1f / 3)]), graph.Scalar(0.5f)]);
        slope = graph.Node("Where", [graph.Node("Greater", [x, graph.Scalar(3)]), graph.Scalar(1), slope]);
        slope = graph.Node("Where", [graph.Node("Less", [x, graph.Scalar(-3)]), graph.Scalar(0), slope]);
        return [graph.Node("Mul", [n.OutputGradients[0]!, slope])];
    });

    /// <summary>Φ(x) + x·φ(x) (the exact GELU; the tanh approximation has no rule).</summary>
    [OnnxGradient("Gelu")]
    private static GradientRule? GeluGradient(OpContext node) => node.Attributes.String("approximate", "none") != "none" ? null : new((graph, n) =>
    {
        var x = graph.Recorded(n.Inputs[0]);
        var cdf = graph.Node("Mul", [graph.Scalar(0.5f), graph.Node("Add", [graph.Scalar(1), graph.Node("Erf", [graph.Node("Mul", [x, graph.Scalar((float)(1 / Math.Sqrt(2)))])])])]);
        var pdf = graph.Node("Mul", [graph.Scalar((float)(1 / Math.Sqrt(2 * Math.PI))),
            graph.Node("Exp", [graph.Node("Mul", [graph.Node("Mul", [x, x]), graph.Scalar(-0.5f)])])]);
        return [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Add", [cdf, graph.Node("Mul", [x, pdf])])])];
    });

    /// <summary>∂x = y·(G − Σ_axis G·y).</summary>
    [OnnxGradient("Softmax")]
    private static GradientRule SoftmaxGradient(OpContext node) => new((graph, n) =>
    {
        var y = graph.Recorded(n.Outputs[0]);
        var g = n.OutputGradients[0]!;
        var dot = graph.Node("ReduceSum", [graph.Node("Mul", [g, y]), graph.Ints(SoftmaxAxis(node, n))], BackwardGraph.Attribute("keepdims", 1));
        return [graph.Node("Mul", [y, graph.Node("Sub", [g, dot])])];
    });

    /// <summary>∂x = G − exp(y)·Σ_axis G.</summary>
    [OnnxGradient("LogSoftmax")]
    private static GradientRule LogSoftmaxGradient(OpContext node) => new((graph, n) =>
    {
        var g = n.OutputGradients[0]!;
        var total = graph.Node("ReduceSum", [g, graph.Ints(SoftmaxAxis(node, n))], BackwardGraph.Attribute("keepdims", 1));
        return [graph.Node("Sub", [g, graph.Node("Mul", [graph.Node("Exp", [graph.Recorded(n.Outputs[0])]), total])])];
    });

    /// <summary>The one axis a softmax normalises over. Before opset 13 the input is coerced to 2-D: one axis only when that is the last.</summary>
    /// <exception cref="NotSupportedException">An older softmax over several axes (the model's gradients then run on libtorch).</exception>
    private static long SoftmaxAxis(OpContext node, GradientNode n)
    {
        var rank = n.InputShapes[0]!.Length;
        if (node.Opset >= 13) return node.Attributes.Int("axis", -1);
        var axis = node.Attributes.Int("axis", 1);
        return axis == -1 || axis == rank - 1 ? rank - 1 : throw new NotSupportedException("a Softmax before opset 13 over several axes has no backward rule");
    }

    [OnnxOp("Tanh")]
    private static OpKernel Tanh(OpContext node) => (x, _) => [x[0]!.tanh()];

    [OnnxOp("Softplus")]
    private static OpKernel Softplus(OpContext node) => (x, _) => [SoftplusOf(x[0]!)];

    /// <summary>
    /// log(1 + eˣ), and x itself above 20, as libtorch's softplus (whose TorchSharp call makes
    /// Scalars nothing holds). Smooth where autograd differentiates it: σ(0) = ½ at 0, and eˣ never
    /// overflows in the branch not taken (its gradient would be NaN).
    /// </summary>
    private static Tensor SoftplusOf(Tensor x) => Scalars.With(20.0, threshold =>
        torch.where(x.gt(threshold), x, x.clamp_max(threshold).exp().log1p()));

    [OnnxOp("Softsign")]
    private static OpKernel Softsign(OpContext node) => (x, _) => [x[0]! / x[0]!.abs().Plus(1)];

    /// <summary>max(0, min(1, alpha·x + beta)).</summary>
    [OnnxOp("HardSigmoid")]
    private static OpKernel HardSigmoid(OpContext node)
    {
        var alpha = node.Attributes.Float("alpha", 0.2f);
        var beta = node.Attributes.Float("beta", 0.5f);
        return (x, _) => [x[0]!.Times(alpha).Plus(beta).Clamp(0, 1)];
    }

    /// <summary>x · max(0, min(1, x/6 + 1/2)).</summary>
    [OnnxOp("HardSwish", 14)]
    private static OpKernel HardSwish(OpContext node) => (x, _) => [x[0]! * x[0]!.Over(6).Plus(0.5).Clamp(0, 1)];

    [OnnxOp("Mish", 18)]
    private static OpKernel Mish(OpContext node) => (x, _) => [x[0]! * SoftplusOf(x[0]!).tanh()];

    /// <summary>mish'(x) = t + x·(1 − t²)·σ(x), t = tanh(softplus(x)), from the recorded input.</summary>
    [OnnxGradient("Mish")]
    private static GradientRule MishGradient(OpContext node) => new((graph, n) =>
    {
        var x = graph.Recorded(n.Inputs[0]);
        var t = graph.Node("Tanh", [graph.Node("Softplus", [x])]);
        var slope = graph.Node("Mul", [graph.Node("Mul", [x, graph.Node("Sigmoid", [x])]), graph.Node("Sub", [graph.Scalar(1), graph.Node("Mul", [t, t])])]);
        return [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Add", [t, slope])])];
    });

    [OnnxOp("Gelu", 20)]
    private static OpKernel Gelu(OpContext node)
    {
        var tanh = node.Attributes.String("approximate", "none") == "tanh";
        return (x, _) => [x[0]!.Times(0.5) * (tanh
            ? x[0]!.Plus((x[0]! * x[0]! * x[0]!).Times(0.044715)).Times(Math.Sqrt(2 / Math.PI)).tanh()
            : x[0]!.Over(Math.Sqrt(2)).erf()).Plus(1)];
    }

    /// <summary>Before opset 13 the input is coerced to 2-D at <c>axis</c> (default 1).</summary>
    [OnnxOp("Softmax")]
    private static OpKernel SoftmaxLegacy(OpContext node) => Coerced(node, (x, d) => x.softmax(d));

    [OnnxOp("Softmax", 13)]
    private static OpKernel Softmax(OpContext node)
    {
        var axis = node.Attributes.Int("axis", -1);
        return (x, _) => [x[0]!.softmax(axis)];
    }

    [OnnxOp("LogSoftmax")]
    private static OpKernel LogSoftmaxLegacy(OpContext node) => Coerced(node, (x, d) => x.log_softmax(d));

    [OnnxOp("LogSoftmax", 13)]
    private static OpKernel LogSoftmax(OpContext node)
    {
        var axis = node.Attributes.Int("axis", -1);
        return (x, _) => [x[0]!.log_softmax(axis)];
    }

    private static OpKernel Coerced(OpContext node, Func<Tensor, long, Tensor> apply)
    {
        var axis = node.Attributes.Int("axis", 1);
        return (x, _) =>
        {
            var input = x[0]!;
            var a = axis < 0 ? axis + input.dim() : axis;
            var flat = input.reshape(input.shape[..(int)a].Aggregate(1L, (p, d) => p * d), -1);
            return [apply(flat, 1).reshape(input.shape)];
        };
    }
}
