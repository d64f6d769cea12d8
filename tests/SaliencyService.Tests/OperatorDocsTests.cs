using SaliencyService.Explain.Mirror;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>docs/operators.md names every registered converter.</summary>
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
}
