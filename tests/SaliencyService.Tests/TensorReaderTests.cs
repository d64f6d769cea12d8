using System.Runtime.InteropServices;
using Google.Protobuf;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Torch;
using Xunit;
using static TorchSharp.torch;
using DataType = SaliencyService.Explain.Onnx.Proto.TensorProto.Types.DataType;

namespace SaliencyService.Tests;

/// <summary>
/// ONNX tensors (initializers, Constant values) as libtorch tensors: raw little-endian data of
/// every element type the mirror reads, in the type it computes in, and a file's shape never
/// trusted beyond the bytes it holds.
/// </summary>
public sealed class TensorReaderTests
{
    private static TensorProto Raw<T>(DataType type, long[] dims, params T[] values) where T : struct
    {
        var proto = new TensorProto { Name = "t", DataType = (int)type, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        proto.Dims.AddRange(dims);
        return proto;
    }

    public static TheoryData<TensorProto, ScalarType, double[]> RawTensors => new()
    {
        { Raw(DataType.Float, [2, 2], 1.5f, -2f, 0f, 3.25f), ScalarType.Float32, [1.5, -2, 0, 3.25] },
        { Raw(DataType.Double, [3], 0.1, -1e10, 7.0), ScalarType.Float32, [(float)0.1, (float)-1e10, 7] },
        { Raw(DataType.Float16, [2], (Half)0.5f, (Half)(-65504f)), ScalarType.Float32, [0.5, -65504] },
        { Raw(DataType.Int64, [2], 1L << 40, -3L), ScalarType.Int64, [1L << 40, -3] },
        { Raw(DataType.Int32, [1, 2], int.MaxValue, -7), ScalarType.Int64, [int.MaxValue, -7] },
        { Raw(DataType.Int16, [2], (short)-300, (short)12), ScalarType.Int64, [-300, 12] },
        { Raw(DataType.Int8, [2], (sbyte)-128, (sbyte)127), ScalarType.Int64, [-128, 127] },
        { Raw(DataType.Uint8, [], (byte)255), ScalarType.Int64, [255] },
    };

    [Theory]
    [MemberData(nameof(RawTensors))]
    public void Raw_data_reads_as_its_values_in_the_type_the_mirror_computes_in(TensorProto proto, ScalarType expectedType, double[] expected)
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = NewDisposeScope();
        var tensor = TensorReader.ToTorch(proto);
        Assert.Equal(expectedType, tensor.dtype);
        Assert.Equal(proto.Dims.ToArray(), tensor.shape);
        Assert.Equal(expected, tensor.to_type(ScalarType.Float64).data<double>().ToArray());
    }

    [Theory]
    [InlineData(new long[] { 5 })] // more values than the data holds
    [InlineData(new long[] { 1 })] // fewer
    [InlineData(new long[] { -1, -3 })] // negative sizes whose product looks right
    [InlineData(new long[] { 1L << 40, 1L << 20 })] // terabytes, which must not be allocated to find out
    [InlineData(new long[] { 1L << 40, 1L << 30 })] // more bytes than a long counts
    public void A_shape_the_raw_data_does_not_fill_is_refused(long[] dims)
    {
        TorchNativeLoader.EnsureLoaded();
        var proto = Raw(DataType.Float, dims, 1f, 2f, 3f);
        var refused = Assert.Throws<UnsupportedOperatorException>(() => TensorReader.ToTorch(proto));
        Assert.Contains("wrong number of values", refused.Message);
    }
}
