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
        string.IsNullOrWhiteSpace(target) ? -1
        : int.TryParse(target, NumberStyles.Integer, CultureInfo.InvariantCulture, out var index) ? Math.Max(index, -1)
        : labels?.ToList().IndexOf(target) ?? -1;

    /// <param name="scores">The pre-softmax scores of one sample, shape [1, classes].</param>
    public static int Resolve(string? target, IReadOnlyList<string>? labels, Tensor scores)
    {
        var count = (int)scores.shape[1];
        if (string.IsNullOrWhiteSpace(target)) return (int)scores.argmax(1).item<long>();
        if (int.TryParse(target, NumberStyles.Integer, CultureInfo.InvariantCulture, out var index))
            return index >= 0 && index < count
                ? index
                : throw new InvalidArgumentException($"target {index} is out of range: the model scores {count} classes (0–{count - 1}).");
        var byLabel = labels?.ToList().IndexOf(target) ?? -1;
        return byLabel >= 0 && byLabel < count
            ? byLabel
            : throw new InvalidArgumentException($"target '{target}' is neither a class index nor one of the model's labels.");
    }
}
