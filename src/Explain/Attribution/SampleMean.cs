using SaliencyService.Explain.Torch;
using static TorchSharp.torch;

namespace SaliencyService.Explain.Attribution;

/// <summary>
/// The mean over samples that arrive a batch at a time ([k, ...] each, made in a dispose scope that
/// ends before the next batch's): only their running sum is kept, in the scope enclosing the
/// batches', so a request holds one batch however many samples it averages.
/// </summary>
public sealed class SampleMean
{
    private Tensor? _sum;
    private long _count;

    /// <summary>Adds a batch's samples; call inside the batch's own dispose scope.</summary>
    public void Add(Tensor batch)
    {
        var sum = batch.sum([0], keepdim: true);
        if (_sum is null) _sum = sum.MoveToOuterDisposeScope();
        else _sum.add_(sum, Scalars.One);
        _count += batch.shape[0];
    }

    /// <summary>The mean of the samples added ([1, ...]), in the enclosing scope.</summary>
    public Tensor Value => _sum?.Over(_count) ?? throw new InvalidOperationException("No samples were added.");
}
