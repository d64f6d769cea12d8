using SaliencyService.Explain.Torch;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// The mean over samples whose sums arrive a batch at a time ([1, ...] each, made in a dispose
/// scope that ends before the next batch's): only the running sum is kept, in the scope enclosing
/// the batches', so a request holds one batch however many samples it averages.
/// </summary>
public sealed class SampleMean
{
    private Tensor? _sum;
    private long _count;

    /// <summary>Adds the sum ([1, ...]) of <paramref name="count"/> samples; call inside their batch's own dispose scope.</summary>
    public void AddSum(Tensor sum, long count)
    {
        if (_sum is null) _sum = sum.MoveToOuterDisposeScope();
        else _sum.add_(sum, Scalars.One);
        _count += count;
    }

    /// <summary>The sum of the samples added ([1, ...]), in the enclosing scope.</summary>
    public Tensor Sum => _sum ?? throw new InvalidOperationException("No samples were added.");

    /// <summary>The mean of the samples added ([1, ...]), in the enclosing scope.</summary>
    public Tensor Value => _sum?.Over(_count) ?? throw new InvalidOperationException("No samples were added.");
}
