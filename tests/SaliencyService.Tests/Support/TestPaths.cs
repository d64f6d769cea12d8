namespace SaliencyService.Tests.Support;

/// <summary>Where the copied reference fixtures and sample images sit beside the test assembly.</summary>
public static class TestPaths
{
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Fixtures");
    public static string Samples => Path.Combine(AppContext.BaseDirectory, "Samples");

    public static string Fixture(string model, string file) => Path.Combine(Fixtures, model, file);

    /// <summary>A file of a test model made by the repository's own tools (tests/SaliencyService.Tests/Models).</summary>
    public static string Model(string model, string file) => Path.Combine(AppContext.BaseDirectory, "Models", model, file);
}
