namespace SaliencyService.Contracts;

/// <summary>
/// The effective image preprocessing of a model: the manifest with every default filled in.
/// Model input value = (pixel × <see cref="Scale"/> − <see cref="Mean"/>[c]) / <see cref="Std"/>[c].
/// </summary>
public sealed record Preprocessing(
    string Input,
    string Layout,
    int Height,
    int Width,
    string Channels,
    double Scale,
    IReadOnlyList<double> Mean,
    IReadOnlyList<double> Std)
{
    /// <summary>The output predict ranks and explanations explain; null where the model has no real-valued output.</summary>
    public string? Output { get; init; }
}
