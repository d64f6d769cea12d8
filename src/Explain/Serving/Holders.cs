namespace SaliencyService.Explain.Serving;

/// <summary>
/// The holders of something shared (a session, a served model version): the owner's hold to begin
/// with, then each user's. Once the count reaches zero it stays there, so nothing is taken after
/// the last holder has let go and disposed it.
/// </summary>
public sealed class Holders
{
    private int _count = 1;

    /// <summary>Takes a hold unless the last one has already been let go.</summary>
    public bool TryAcquire()
    {
        while (true)
        {
            var count = Volatile.Read(ref _count);
            if (count == 0) return false;
            if (Interlocked.CompareExchange(ref _count, count + 1, count) == count) return true;
        }
    }

    /// <summary>Lets go of a hold; true for the last one, whose holder disposes what was held.</summary>
    public bool Release() => Interlocked.Decrement(ref _count) == 0;
}
