using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Broadcasting arithmetic, comparisons and unary maths (opset 7+ broadcasting).</summary>
internal static class ElementwiseOps
{
    [OnnxOp("Add", 7)]
    private static OpKernel Add(OpContext node) => (x, _) => [x[0]!.Plus(x[1]!)];

    [OnnxOp("Sub", 7)]
    private static OpKernel Sub(OpContext node) => (x, _) => [x[0]! - x[1]!];

    /// <summary>Each addend gets the gradient, summed over the axes it was broadcast along.</summary>
    [OnnxGradient("Add")]
    [OnnxGradient("Sum")]
    private static GradientRule AddGradient(OpContext node) => new((graph, n) =>
        n.InputShapes.Select((shape, i) => n.Wanted[i] ? graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, shape!) : null).ToArray());

    /// <summary>Each operand gets the gradient over their count, summed over the axes it was broadcast along.</summary>
    [OnnxGradient("Mean")]
    private static GradientRule MeanGradient(OpContext node) => new((graph, n) =>
    {
        var share = graph.Node("Mul", [n.OutputGradients[0]!, graph.Scalar(1f / n.InputShapes.Length)]);
        return n.InputShapes.Select((shape, i) => n.Wanted[i] ? graph.SumToShape(share, n.OutputShapes[0]!, shape!) : null).ToArray();
    });

    /// <summary>
    /// Max or Min as libtorch's autograd differentiates the mirror's forward, which chains the
    /// operands pairwise: each pair's winner takes the gradient, a tie halves it (so a three-way tie
    /// gives ¼, ¼, ½). The partial results are recomputed from the operands; every pair works at the
    /// output's shape, and each operand's gradient is summed back to its own.
    /// </summary>
    [OnnxGradient("Max")]
    [OnnxGradient("Min")]
    private static GradientRule ExtremumGradient(OpContext node) => new((graph, n) =>
    {
        if (n.Inputs.Length == 1) return [n.OutputGradients[0]];
        var operands = Enumerable.Range(0, n.Inputs.Length).Select(i => graph.Operand(n, i)).ToArray();
        var partial = new string[operands.Length - 1];
        partial[0] = operands[0];
        for (var j = 1; j < partial.Length; j++) partial[j] = graph.Node(node.OpType, [partial[j - 1], operands[j]]);
        var gradients = new string[operands.Length];
        var g = n.OutputGradients[0]!;
        for (var j = operands.Length - 1; j >= 1; j--)
        {
            var (a, b) = (partial[j - 1], operands[j]);
            var tie = graph.Node("Where", [graph.Node("Equal", [a, b]), graph.Node("Mul", [g, graph.Scalar(0.5f)]), graph.Scalar(0)]);
            var first = graph.Node("Where", [graph.Node(node.OpType == "Max" ? "Greater" : "Less", [a, b]), g, tie]);
            gradients[j] = graph.Node("Sub", [g, first]);
            g = first;
        }
        gradients[0] = g;
        return [.. gradients.Select((gradient, i) => n.Wanted[i] ? graph.SumToShape(gradient, n.OutputShapes[0]!, n.InputShapes[i]!) : null)];
    });

    [OnnxGradient("Sub")]
    private static GradientRule SubGradient(OpContext node) => new((graph, n) =>
    [
        n.Wanted[0] ? graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, n.InputShapes[0]!) : null,
        n.Wanted[1] ? graph.Node("Neg", [graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, n.InputShapes[1]!)]) : null,
    ]);

    /// <summary>∂a = G·b, ∂b = G·a (each summed back to its shape); a computed factor is recorded.</summary>
    [OnnxGradient("Mul")]
    private static GradientRule MulGradient(OpContext node) => new((graph, n) =>
        [.. Enumerable.Range(0, 2).Select(i => n.Wanted[i]
            ? graph.SumToShape(graph.Node("Mul", [n.OutputGradients[0]!, graph.Operand(n, 1 - i)]), n.OutputShapes[0]!, n.InputShapes[i]!)
            : null)]);

    /// <summary>∂a = G / b, ∂b = −G·y / b (y = a / b), each summed back to its shape; a constant b is folded in.</summary>
    [OnnxGradient("Div")]
    private static GradientRule DivGradient(OpContext node) => new((graph, n) =>
    {
        var b = graph.Operand(n, 1);
        var g = n.OutputGradients[0]!;
        return
        [
            n.Wanted[0] ? graph.SumToShape(graph.Node("Div", [g, b]), n.OutputShapes[0]!, n.InputShapes[0]!) : null,
            n.Wanted[1]
                ? graph.SumToShape(graph.Node("Neg", [graph.Node("Div", [graph.Node("Mul", [g, graph.Recorded(n.Outputs[0])]), b])]), n.OutputShapes[0]!, n.InputShapes[1]!)
                : null,
        ];
    });

    /// <summary>
    /// ∂a = G·b·a^(b−1); a computed exponent also takes ∂b = G·y·ln a, 0 where a = 0 and b ≥ 0
    /// (as libtorch's). The exponent is read as float (an integer one too).
    /// </summary>
    [OnnxGradient("Pow")]
    private static GradientRule PowGradient(OpContext node) => new((graph, n) =>
    {
        var g = n.OutputGradients[0]!;
        var a = graph.Operand(n, 0);
        var b = graph.Node("Cast", [graph.Operand(n, 1)], BackwardGraph.Attribute("to", (long)Onnx.Proto.TensorProto.Types.DataType.Float));
        string? dA = null, dB = null;
        if (n.Wanted[0])
        {
            var slope = graph.Node("Mul", [b, graph.Node("Pow", [a, graph.Node("Sub", [b, graph.Scalar(1)])])]);
            dA = graph.SumToShape(graph.Node("Mul", [g, slope]), n.OutputShapes[0]!, n.InputShapes[0]!);
        }
        if (n.Wanted[1])
        {
            var zero = graph.Scalar(0);
            var flat = graph.Node("And", [graph.Node("Equal", [a, zero]), graph.Node("GreaterOrEqual", [b, zero])]);
            var slope = graph.Node("Where", [flat, zero, graph.Node("Mul", [graph.Recorded(n.Outputs[0]), graph.Node("Log", [a])])]);
            dB = graph.SumToShape(graph.Node("Mul", [g, slope]), n.OutputShapes[0]!, n.InputShapes[1]!);
        }
        return [dA, dB];
    });

    /// <summary>erf'(x) = 2/√π · exp(−x²).</summary>
    [OnnxGradient("Erf")]
    private static GradientRule ErfGradient(OpContext node) => new((graph, n) =>
    {
        var x = graph.Recorded(n.Inputs[0]);
        var slope = graph.Node("Mul", [graph.Scalar((float)(2 / Math.Sqrt(Math.PI))), graph.Node("Exp", [graph.Node("Neg", [graph.Node("Mul", [x, x])])])]);
        return [graph.Node("Mul", [n.OutputGradients[0]!, slope])];
    });

    /// <summary>exp'(x) = y.</summary>
    [OnnxGradient("Exp")]
    private static GradientRule ExpGradient(OpContext node) => new((graph, n) => [graph.Node("Mul", [n.OutputGradients[0]!, graph.Recorded(n.Outputs[0])])]);

    /// <summary>√'(x) = 1 / (2y).</summary>
    [OnnxGradient("Sqrt")]
    private static GradientRule SqrtGradient(OpContext node) => new((graph, n) =>
        [graph.Node("Div", [graph.Node("Mul", [n.OutputGradients[0]!, graph.Scalar(0.5f)]), graph.Recorded(n.Outputs[0])])]);

    /// <summary>(1/x)' = −y².</summary>
    [OnnxGradient("Reciprocal")]
    private static GradientRule ReciprocalGradient(OpContext node) => new((graph, n) =>
    {
        var y = graph.Recorded(n.Outputs[0]);
        return [graph.Node("Neg", [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Mul", [y, y])])])];
    });

    /// <summary>sign(x) (0 at 0, as PyTorch's).</summary>
    [OnnxGradient("Abs")]
    private static GradientRule AbsGradient(OpContext node) => new((graph, n) =>
        [graph.Node("Mul", [n.OutputGradients[0]!, graph.Node("Sign", [graph.Recorded(n.Inputs[0])])])]);

    /// <summary>1 / x.</summary>
    [OnnxGradient("Log")]
    private static GradientRule LogGradient(OpContext node) => new((graph, n) =>
        [graph.Node("Div", [n.OutputGradients[0]!, graph.Recorded(n.Inputs[0])])]);

    [OnnxGradient("Neg")]
    private static GradientRule NegGradient(OpContext node) => new((graph, n) => [graph.Node("Neg", [n.OutputGradients[0]!])]);

    /// <summary>The chosen side takes the gradient: ∂a = G where the condition holds, ∂b = G elsewhere.</summary>
    [OnnxGradient("Where")]
    private static GradientRule WhereGradient(OpContext node) => new((graph, n) =>
    {
        var condition = n.Constants[0] is { } c ? graph.Constant(c.to_type(ScalarType.Int64)) : graph.Recorded(n.Inputs[0]);
        if (n.Constants[0] is not null) condition = graph.Node("Cast", [condition], BackwardGraph.Attribute("to", (long)Onnx.Proto.TensorProto.Types.DataType.Bool));
        var g = n.OutputGradients[0]!;
        var zero = graph.Scalar(0);
        return
        [
            null,
            n.Wanted[1] ? graph.SumToShape(graph.Node("Where", [condition, g, zero]), n.OutputShapes[0]!, n.InputShapes[1]!) : null,
            n.Wanted[2] ? graph.SumToShape(graph.Node("Where", [condition, zero, g]), n.OutputShapes[0]!, n.InputShapes[2]!) : null,
        ];
    });

    [OnnxOp("Mul", 7)]
    private static OpKernel Mul(OpContext node) => (x, _) => [x[0]! * x[1]!];

    /// <summary>Integer division truncates, as in C (and ONNX Runtime).</summary>
    [OnnxOp("Div", 7)]
    private static OpKernel Div(OpContext node) => (x, _) =>
        [OpHelpers.IsInteger(x[0]!) ? x[0]!.div(x[1]!, RoundingMode.trunc) : x[0]! / x[1]!];

    [OnnxOp("Pow", 7)]
    private static OpKernel Pow(OpContext node) => (x, _) => [x[0]!.pow(x[1]!).to_type(x[0]!.dtype)];

    [OnnxOp("Sum", 8)]
    private static OpKernel Sum(OpContext node) => (x, _) => [x.Skip(1).Aggregate(x[0]!, (a, b) => a.Plus(b!))];

    [OnnxOp("Mean", 8)]
    private static OpKernel Mean(OpContext node) => (x, _) => [x.Skip(1).Aggregate(x[0]!, (a, b) => a.Plus(b!)).Over(x.Length)];

    [OnnxOp("Max", 8)]
    private static OpKernel Max(OpContext node) => (x, _) => [x.Skip(1).Aggregate(x[0]!, (a, b) => maximum(a, b!))];

    [OnnxOp("Min", 8)]
    private static OpKernel Min(OpContext node) => (x, _) => [x.Skip(1).Aggregate(x[0]!, (a, b) => minimum(a, b!))];

    [OnnxOp("Equal", 7)]
    private static OpKernel Equal(OpContext node) => (x, _) => [x[0]!.eq(x[1]!)];

    [OnnxOp("Greater", 7)]
    private static OpKernel Greater(OpContext node) => (x, _) => [x[0]!.gt(x[1]!)];

    [OnnxOp("Less", 7)]
    private static OpKernel Less(OpContext node) => (x, _) => [x[0]!.lt(x[1]!)];

    [OnnxOp("GreaterOrEqual", 12)]
    private static OpKernel GreaterOrEqual(OpContext node) => (x, _) => [x[0]!.ge(x[1]!)];

    [OnnxOp("LessOrEqual", 12)]
    private static OpKernel LessOrEqual(OpContext node) => (x, _) => [x[0]!.le(x[1]!)];

    [OnnxOp("Not")]
    private static OpKernel Not(OpContext node) => (x, _) => [x[0]!.logical_not()];

    [OnnxOp("And", 7)]
    private static OpKernel And(OpContext node) => (x, _) => [x[0]!.logical_and(x[1]!)];

    [OnnxOp("Or", 7)]
    private static OpKernel Or(OpContext node) => (x, _) => [x[0]!.logical_or(x[1]!)];

    [OnnxOp("Where", 9)]
    private static OpKernel Where(OpContext node) => (x, _) => [where(x[0]!.to_type(ScalarType.Bool), x[1]!, x[2]!)];

    [OnnxOp("Sqrt")]
    private static OpKernel Sqrt(OpContext node) => (x, _) => [x[0]!.sqrt()];

    [OnnxOp("Erf")]
    private static OpKernel Erf(OpContext node) => (x, _) => [x[0]!.erf()];

    [OnnxOp("Exp")]
    private static OpKernel Exp(OpContext node) => (x, _) => [x[0]!.exp()];

    [OnnxOp("Log")]
    private static OpKernel Log(OpContext node) => (x, _) => [x[0]!.log()];

    [OnnxOp("Neg")]
    private static OpKernel Neg(OpContext node) => (x, _) => [x[0]!.neg()];

    [OnnxOp("Abs")]
    private static OpKernel Abs(OpContext node) => (x, _) => [x[0]!.abs()];

    [OnnxOp("Reciprocal")]
    private static OpKernel Reciprocal(OpContext node) => (x, _) => [x[0]!.reciprocal()];

    [OnnxOp("Floor")]
    private static OpKernel Floor(OpContext node) => (x, _) => [x[0]!.floor()];

    [OnnxOp("Ceil")]
    private static OpKernel Ceil(OpContext node) => (x, _) => [x[0]!.ceil()];

    /// <summary>Steps: zero almost everywhere, as libtorch's (no gradient flows through them).</summary>
    [OnnxGradient("Floor")]
    [OnnxGradient("Ceil")]
    private static GradientRule StepGradient(OpContext node) => new((graph, n) => [null]);
}
