using static TorchSharp.torch;

namespace SaliencyService.Explain.Ops;

/// <summary>Small conversions shared by the converters.</summary>
internal static class OpHelpers
{
    /// <summary>The values of a (shape-like) integer tensor.</summary>
    public static long[] Longs(Tensor tensor) => tensor.to_type(ScalarType.Int64).data<long>().ToArray();

    public static double[] Doubles(Tensor tensor) => tensor.to_type(ScalarType.Float64).data<double>().ToArray();

    /// <summary>Normalises a possibly negative axis against <paramref name="rank"/>.</summary>
    public static long Axis(long axis, long rank) => axis < 0 ? axis + rank : axis;

    public static bool IsInteger(Tensor tensor) => tensor.dtype is ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte;
}
