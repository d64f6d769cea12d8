using TorchSharp;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Torch;

/// <summary>
/// Every number the engine hands libtorch, each kept alive until libtorch has read it.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 turns a number into a native <see cref="Scalar"/> (so does <c>a + b</c> of two
/// tensors, for its alpha of 1) and passes on only its handle, so nothing holds the Scalar while
/// libtorch reads it. A collection on another thread can then finalize it mid-call: libtorch reads
/// freed memory and throws ("Expected false to be true" from c10::Scalar::toFloat; CI, stop 43) or
/// computes with a wrong value. Measured: 5 of 2.3 million <c>a + b</c> failed while another thread
/// collected, none of 3.1 million <c>a.add(b, One)</c>. Tensors are safe, the dispose scope holds
/// them. <c>ScalarLifetimeTests</c> reads the IL for any call elsewhere that makes a Scalar.
/// </remarks>
public static class Scalars
{
    // Static, so never finalized.
    public static readonly Scalar Zero = 0L.ToScalar();
    public static readonly Scalar One = 1L.ToScalar();

    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    public static Tensor Plus(this Tensor a, double b) => With(b, s => a.add(s, One));

    public static Tensor Plus(this Tensor a, long b) => With(b, s => a.add(s, One));

    public static Tensor Times(this Tensor a, double b) => With(b, a.mul);

    public static Tensor Times(this Tensor a, long b) => With(b, a.mul);

    public static Tensor Over(this Tensor a, double b) => With(b, s => a.div(s));

    public static Tensor Clamp(this Tensor a, double min, double max) => With(min, lo => With(max, hi => a.clamp(lo, hi)));

    /// <summary>start, start + step, ... below <paramref name="stop"/> (above, for a negative step).</summary>
    public static Tensor Range(double start, double stop, double step, ScalarType type) =>
        With(start, first => With(stop, end => With(step, delta => arange(first, end, delta, type))));

    public static Tensor Range(long start, long stop, long step, ScalarType type) =>
        With(start, first => With(stop, end => With(step, delta => arange(first, end, delta, type))));

    /// <summary>0, 1, ..., <paramref name="count"/> − 1.</summary>
    public static Tensor Range(long count, ScalarType type) => Range(0, count, 1, type);

    /// <summary>Runs <paramref name="use"/> with <paramref name="value"/> as a Scalar that lives until it returns.</summary>
    public static T With<T>(double value, Func<Scalar, T> use)
    {
        using var scalar = value.ToScalar();
        return use(scalar);
    }

    /// <inheritdoc cref="With{T}(double, Func{Scalar, T})"/>
    public static T With<T>(long value, Func<Scalar, T> use)
    {
        using var scalar = value.ToScalar();
        return use(scalar);
    }
}
