using SaliencyService.Explain.Tensors;
using Xunit;

namespace SaliencyService.Tests.Support;

/// <summary>An answer's <c>.npy</c> map against a fixture's PyTorch float64 map.</summary>
public static class ReferenceMaps
{
    /// <summary>Same shape, and every element within 1e-3 of the reference's largest magnitude.</summary>
    public static void AssertMatches(string model, string file, byte[] npy)
    {
        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(model, file)), long.MaxValue);
        var actual = Npy.Read(npy, long.MaxValue);
        Assert.Equal(expected.Shape, actual.Shape);
        var scale = expected.Data.Max(Math.Abs);
        var error = expected.Data.Zip(actual.Data, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(error <= 1e-3 * scale, $"{model}/{file}: max abs error {error} vs max |reference| {scale}");
    }
}
