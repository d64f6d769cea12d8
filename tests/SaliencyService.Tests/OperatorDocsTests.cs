using SaliencyService.Explain.Mirror;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>docs/operators.md names every registered converter and every backward rule.</summary>
public sealed class OperatorDocsTests
{
    [Fact]
    public void Every_registered_op_is_documented()
    {
        var docs = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "operators.md"));
        var tableOps = docs.Split('\n').Where(l => l.StartsWith("| ") && !l.StartsWith("| op ")).Select(l => l.Split('|')[1]).ToList();
        var documented = tableOps.SelectMany(cell => cell.Split(',').Select(c => c.Trim())).ToHashSet();
        var missing = OpRegistry.Registrations.Select(r => r.OpType).Distinct().Where(op => !documented.Contains(op));
        Assert.Empty(missing);
    }

    [Fact]
    public void Every_backward_rule_is_documented()
    {
        var docs = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "operators.md"));
        var section = docs[docs.IndexOf("## Backward rules", StringComparison.Ordinal)..];
        var documented = section.Split('\n').Where(l => l.StartsWith("| ") && !l.StartsWith("| op "))
            .SelectMany(l => l.Split('|')[1].Split(',').Select(c => c.Trim())).ToHashSet();
        Assert.Equal(OpRegistry.GradientOpTypes.Order(), documented.Order());
    }
}
