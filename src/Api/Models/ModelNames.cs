using SaliencyService.Api.Errors;
using System.Text.RegularExpressions;
using SaliencyService.Explain;

namespace SaliencyService.Api.Models;

/// <summary>Model names are directory names in the store, so they are strictly limited.</summary>
public static partial class ModelNames
{
    /// <summary>The contract's pattern: no separators, no leading dot, so no path tricks.</summary>
    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{0,63}\z")] // \z, not $: "$" would accept a trailing newline
    private static partial Regex Pattern();

    public static bool IsValid(string? name) => name is not null && Pattern().IsMatch(name);

    public static string Validate(string? name) => IsValid(name)
        ? name!
        : throw ProblemException.BadRequest(
            $"Invalid model name '{name}': use 1–64 characters of a–z, 0–9, '.', '_' or '-', starting with a letter or digit.");

    /// <summary>The default name of an upload: its file name without extension, lower-cased.</summary>
    public static string FromFileName(string? fileName)
    {
        var stem = Path.GetFileNameWithoutExtension(Path.GetFileName(fileName ?? "")).ToLowerInvariant();
        return Validate(stem.Length == 0 ? null : stem);
    }
}
