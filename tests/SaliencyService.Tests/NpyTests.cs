using SaliencyService.Api.Errors;
using SaliencyService.Explain;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

public sealed class NpyTests
{
    [Fact]
    public void Reads_arrays_written_by_numpy()
    {
        // Fixture files were written by NumPy itself; [1,64,64,3] float32, values of an image in [0,1].
        var tensor = Npy.Read(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy")), long.MaxValue);
        Assert.Equal([1L, 64, 64, 3], tensor.Shape);
        Assert.Equal(64 * 64 * 3, tensor.Data.Length);
        Assert.All(tensor.Data, v => Assert.InRange(v, 0f, 1f));
        Assert.Contains(tensor.Data, v => v > 0.5f);
    }

    [Theory]
    [InlineData(new long[] { 5 })]
    [InlineData(new long[] { 2, 3 })]
    [InlineData(new long[] { 1, 3, 4, 2 })]
    [InlineData(new long[] { })]
    public void Write_then_read_round_trips_shape_and_values(long[] shape)
    {
        var data = Enumerable.Range(0, (int)FloatTensor.ElementCount(shape)).Select(i => i * 0.5f - 3).ToArray();
        var bytes = Npy.Write(data, shape);
        Assert.Equal(0, (bytes.Length - data.Length * 4) % 64); // header aligned as NumPy does
        var back = Npy.Read(bytes, long.MaxValue);
        Assert.Equal(shape, back.Shape);
        Assert.Equal(data, back.Data);
    }

    [Fact]
    public void Writes_the_header_numpy_expects()
    {
        var header = System.Text.Encoding.Latin1.GetString(Npy.Write([1f, 2f], [2]));
        Assert.StartsWith("\u0093NUMPY\u0001\u0000", header);
        Assert.Contains("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", header);
    }

    [Fact]
    public void Refuses_more_elements_than_the_limit_with_a_413()
    {
        var e = Assert.Throws<InputTooLargeException>(() => Npy.Read(Npy.Write(new float[100], [10, 10]), 99));
        Assert.Equal(413, Problems.Describe(e).Status);
    }
}
