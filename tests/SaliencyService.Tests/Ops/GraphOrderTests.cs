using SaliencyService.Explain.Mirror;
using Xunit;
using static TorchSharp.torch;

namespace SaliencyService.Tests.Ops;

/// <summary>The mirror runs a graph's nodes in an order that works, whatever order the file lists them in.</summary>
public sealed class GraphOrderTests
{
    [Fact]
    public void Nodes_listed_after_their_readers_run_first()
    {
        var model = new OnnxTestModel(13, [1, 4]).Initializer("two", [2f])
            .Node("Mul", ["r", "two"], ["y"]).Node("Relu", ["n"], ["r"]).Node("Neg", ["x"], ["n"]).Output("y").Model();
        using var mirror = GraphMirror.Build(model, "x", "y").Mirror!;
        using var scope = NewDisposeScope();
        var y = mirror.Forward(tensor(new[] { -1f, 2, -3, 4 }, [1, 4]), RectifierRule.Gradient)["y"];
        Assert.Equal([2f, 0, 6, 0], y.data<float>().ToArray());
    }

    [Fact]
    public void A_cycle_is_reported_not_run()
    {
        var model = new OnnxTestModel(13, [1, 4]).Node("Add", ["x", "b"], ["a"]).Node("Relu", ["a"], ["b"]).Node("Relu", ["a"], ["y"]).Output("y").Model();
        var build = GraphMirror.Build(model, "x", "y");
        Assert.Null(build.Mirror);
        Assert.Contains(build.UnsupportedOperators, reason => reason.Contains("is never produced"));
    }
}
