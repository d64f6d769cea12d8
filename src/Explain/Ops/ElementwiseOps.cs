using SaliencyService.Explain.Mirror;
using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Broadcasting arithmetic, comparisons and unary maths (opset 7+ broadcasting).</summary>
internal static class ElementwiseOps
{
    [OnnxOp("Add", 7)]
    private static OpKernel Add(OpContext node) => (x, _) => [x[0]! + x[1]!];

    [OnnxOp("Sub", 7)]
    private static OpKernel Sub(OpContext node) => (x, _) => [x[0]! - x[1]!];

    /// <summary>Each addend gets the gradient, summed over the axes it was broadcast along.</summary>
    [OnnxGradient("Add")]
    [OnnxGradient("Sum")]
    private static GradientRule AddGradient(OpContext node) => new((graph, n) =>
        n.InputShapes.Select((shape, i) => n.Wanted[i] ? graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, shape!) : null).ToArray());

    [OnnxGradient("Sub")]
    private static GradientRule SubGradient(OpContext node) => new((graph, n) =>
    [
        n.Wanted[0] ? graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, n.InputShapes[0]!) : null,
        n.Wanted[1] ? graph.Node("Neg", [graph.SumToShape(n.OutputGradients[0]!, n.OutputShapes[0]!, n.InputShapes[1]!)]) : null,
    ]);

    /// <summary>∂a = G·b, ∂b = G·a (each summed back to its shape); a computed factor is recorded.</summary>
    [OnnxGradient("Mul")]
    private static GradientRule MulGradient(OpContext node) => new((graph, n) =>
    {
        string Factor(int i) => n.Constants[i] is { } c ? graph.Constant(c) : graph.Recorded(n.Inputs[i]);
        return [.. Enumerable.Range(0, 2).Select(i => n.Wanted[i]
            ? graph.SumToShape(graph.Node("Mul", [n.OutputGradients[0]!, Factor(1 - i)]), n.OutputShapes[0]!, n.InputShapes[i]!)
            : null)];
    });

    /// <summary>Division by a constant: ∂a = G / b.</summary>
    [OnnxGradient("Div")]
    private static GradientRule? DivGradient(OpContext node) => node.Constant(1) is null ? null : new((graph, n) =>
        [graph.SumToShape(graph.Node("Div", [n.OutputGradients[0]!, graph.Constant(n.Constants[1]!)]), n.OutputShapes[0]!, n.InputShapes[0]!), null]);

    [OnnxOp("Mul", 7)]
    private static OpKernel Mul(OpContext node) => (x, _) => [x[0]! * x[1]!];

    /// <summary>Integer division truncates, as in C (and ONNX Runtime).</summary>
    [OnnxOp("Div", 7)]
    private static OpKernel Div(OpContext node) => (x, _) =>
        [OpHelpers.IsInteger(x[0]!) ? x[0]!.div(x[1]!, RoundingMode.trunc) : x[0]! / x[1]!];

    [OnnxOp("Pow", 7)]
    private static OpKernel Pow(OpContext node) => (x, _) => [x[0]!.pow(x[1]!).to_type(x[0]!.dtype)];

    [OnnxOp("Sum", 8)]
    private static OpKernel Sum(OpContext node) => (x, _) => [x.Skip(1).Aggregate(x[0]!, (a, b) => a + b!)];

    [OnnxOp("Mean", 8)]
    private static OpKernel Mean(OpContext node) => (x, _) => [x.Skip(1).Aggregate(x[0]!, (a, b) => a + b!) / x.Length];

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
}
