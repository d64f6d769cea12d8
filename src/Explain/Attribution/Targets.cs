using System.Globalization;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>Which score is explained: an index, a label, or by default the top-1 of the score.</summary>
public static class Targets
{
    /// <summary>
    /// The index <see cref="Resolve"/> will give, where the request alone says it (an index or a
    /// label); −1 for the top score, or where only the scores can tell.
    /// </summary>
    public static long Expected(string? target, IReadOnlyList<string>? labels) =>
        Named(target, labels) is { } named ? Math.Max(named.Index, -1) : -1;

    /// <param name="scores">The pre-softmax scores of one sample, shape [1, classes].</param>
    public static int Resolve(string? target, IReadOnlyList<string>? labels, Tensor scores)
    {
        var count = (int)scores.shape[1];
        if (Named(target, labels) is not { } named) return (int)scores.argmax(1).item<long>();
        if (named.Index >= 0 && named.Index < count) return named.Index;
        throw new InvalidArgumentException(named.ByLabel
            ? $"target '{target}' is neither a class index nor one of the model's labels."
            : $"target {named.Index} is out of range: the model scores {count} classes (0–{count - 1}).");
    }

    /// <summary>The index the request names (a label's: −1 where the model has no such label), or null for the top score.</summary>
    private static (int Index, bool ByLabel)? Named(string? target, IReadOnlyList<string>? labels) =>
        string.IsNullOrWhiteSpace(target) ? null
        : int.TryParse(target, NumberStyles.Integer, CultureInfo.InvariantCulture, out var index) ? (index, false)
        : (labels?.ToList().IndexOf(target) ?? -1, true);
}
