namespace SaliencyService.Explain.Tensors;

/// <summary>A dense, row-major float32 tensor held in managed memory.</summary>
public sealed record FloatTensor(float[] Data, long[] Shape)
{
    public static long ElementCount(IEnumerable<long> shape) =>
        shape.Aggregate(1L, (count, dim) => checked(count * dim));
}
