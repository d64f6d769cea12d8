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

    // Headers as NumPy 1.24's np.load judged them when these tests were written: it reads every
    // one of these as shape (2, 3)...
    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")]
    [InlineData("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}")]
    [InlineData("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3)}")]
    [InlineData("{ 'descr' :'<f4' ,\t'fortran_order':False,'shape':( 2 , 3 , ) }")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }")]
    public void Reads_every_header_numpy_reads(string dict)
    {
        var tensor = Npy.Read(WithHeader(dict, [0f, 1, 2, 3, 4, 5]), long.MaxValue);
        Assert.Equal([2L, 3], tensor.Shape);
        Assert.Equal([0f, 1, 2, 3, 4, 5], tensor.Data);
    }

    // ... and refuses each of these but the last (its messages in the comments), as the service must, with
    // a 400 that says why. The last is a structured array, which NumPy reads and the service, float32 only, refuses.
    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", "key 'x'")] // does not contain the correct keys
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': __import__('os')}", "key 'x'")] // malformed node
    [InlineData("{'descr': '<f4', 'shape': (2, 3)}", "needs the keys")] // does not contain the correct keys
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", "'(n,)'")] // shape is not valid: 6
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", "non-negative integer")] // negative dimensions
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3.0)}", "')' expected")] // shape is not valid
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}", "'(' expected")] // shape is not valid
    [InlineData("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", "True or False")] // not a valid bool: 0
    [InlineData("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3)}", "True or False")] // malformed node
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x", "text after the dict")] // cannot parse header
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", "'}' expected")] // EOF in multi-line statement
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3),, }", "quoted string expected")] // cannot parse header
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,, 3)}", "non-negative integer")] // cannot parse header
    [InlineData("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3)}", "structured dtype")]
    public void Refuses_every_header_numpy_refuses_saying_why(string dict, string says)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => Npy.Read(WithHeader(dict, [0f, 1, 2, 3, 4, 5]), long.MaxValue));
        Assert.Contains(says, e.Message);
        Assert.Equal(400, Problems.Describe(e).Status);
    }

    /// <summary>A version 1.0 file of <paramref name="dict"/>, padded as NumPy pads it, and <paramref name="data"/>.</summary>
    private static byte[] WithHeader(string dict, float[] data)
    {
        var text = dict + new string(' ', (64 - (10 + dict.Length + 1) % 64) % 64) + "\n";
        return [0x93, .. "NUMPY"u8, 1, 0, .. BitConverter.GetBytes((ushort)text.Length), .. System.Text.Encoding.Latin1.GetBytes(text),
            .. System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan())];
    }

    [Fact]
    public void Refuses_more_elements_than_the_limit_with_a_413()
    {
        var e = Assert.Throws<InputTooLargeException>(() => Npy.Read(Npy.Write(new float[100], [10, 10]), 99));
        Assert.Equal(413, Problems.Describe(e).Status);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    [InlineData(1 << 20)]
    public async Task Reads_a_stream_as_it_arrives_in_pieces_of_any_size(int piece)
    {
        var data = Enumerable.Range(0, 2 * 3 * 5 * 7).Select(i => MathF.Sin(i) * 1e3f).ToArray();
        var streamed = await Npy.ReadAsync(new Trickle(Npy.Write(data, [2, 3, 5, 7]), piece), long.MaxValue, long.MaxValue, CancellationToken.None);
        Assert.Equal([2L, 3, 5, 7], streamed.Shape);
        Assert.Equal(data, streamed.Data);

        // A file NumPy wrote, header and all.
        var numpy = File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "input0.tensor.npy"));
        var fromNumpy = await Npy.ReadAsync(new Trickle(numpy, piece), long.MaxValue, long.MaxValue, CancellationToken.None);
        Assert.Equal([1L, 64, 64, 3], fromNumpy.Shape);
        Assert.Equal(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(numpy.AsSpan(numpy.Length - 64 * 64 * 3 * 4)).ToArray(), fromNumpy.Data);
    }

    [Fact]
    public async Task Reads_a_version_2_header_from_a_stream()
    {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".PadRight(51) + "\n";
        byte[] file = [0x93, .. "NUMPY"u8, 2, 0, .. BitConverter.GetBytes((uint)header.Length), .. System.Text.Encoding.Latin1.GetBytes(header),
            .. BitConverter.GetBytes(1.5f), .. BitConverter.GetBytes(-2f), .. BitConverter.GetBytes(8f)];
        var tensor = await Npy.ReadAsync(new Trickle(file, 5), long.MaxValue, long.MaxValue, CancellationToken.None);
        Assert.Equal([3L], tensor.Shape);
        Assert.Equal([1.5f, -2f, 8f], tensor.Data);
    }

    [Fact]
    public async Task A_stream_is_refused_for_what_a_whole_file_is_refused_with_the_same_message()
    {
        var good = Npy.Write([1f, 2f, 3f, 4f], [2, 2]);
        byte[] huge = [0x93, .. "NUMPY"u8, 2, 0, .. BitConverter.GetBytes(uint.MaxValue), .. "{}"u8];
        foreach (var (bad, says) in new (byte[], string)[]
        {
            (good[..^4], "holds 12 bytes but shape (2, 2) needs 16"),
            ([.. good, 0, 0, 0, 0], "holds 20 bytes but shape (2, 2) needs 16"),
            (good[..20], "header is truncated"),
            ("not a numpy file at all"u8.ToArray(), "bad magic bytes"),
            (good[..8], "bad magic bytes"),
            (huge, "header is longer than"),
        })
        {
            var streamed = await Assert.ThrowsAsync<InvalidArgumentException>(() => Npy.ReadAsync(new Trickle(bad, 3), long.MaxValue, long.MaxValue, CancellationToken.None));
            Assert.Contains(says, streamed.Message);
            if (bad != huge) Assert.Equal(Assert.Throws<InvalidArgumentException>(() => Npy.Read(bad, long.MaxValue)).Message, streamed.Message);
        }
        var tooMany = await Assert.ThrowsAsync<InputTooLargeException>(() => Npy.ReadAsync(new Trickle(good, 3), 3, long.MaxValue, CancellationToken.None));
        Assert.Equal(413, Problems.Describe(tooMany).Status);
    }

    [Fact]
    public async Task A_header_declaring_more_than_the_body_can_hold_is_refused_before_the_tensor_is_allocated()
    {
        // 60 million elements (240 MB) declared in a 128-byte file. (A MemoryStream completes on this thread.)
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (60000000,), }".PadRight(117) + "\n";
        byte[] file = [0x93, .. "NUMPY"u8, 1, 0, .. BitConverter.GetBytes((ushort)header.Length), .. System.Text.Encoding.Latin1.GetBytes(header)];
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => Npy.ReadAsync(new MemoryStream(file), long.MaxValue, file.Length, CancellationToken.None));
        Assert.Contains("needs 240000000 bytes; the request body holds at most 128", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "the tensor was allocated");
    }

    /// <summary>A body that arrives at most <paramref name="piece"/> bytes per read, as a slow client sends it.</summary>
    private sealed class Trickle(byte[] bytes, int piece) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, piece)], cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, piece));
    }
}
