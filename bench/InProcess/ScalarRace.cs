using SaliencyService.Explain.Torch;
using static TorchSharp.torch;

namespace SaliencyService.Bench;

/// <summary>
/// The race <see cref="Scalars"/> closes, reproduced: one thread adds two tensors for SECONDS,
/// TorchSharp's own <c>a + b</c> (which makes its alpha of 1 as a Scalar nothing holds) against
/// <see cref="Scalars.Plus(Tensor, Tensor)"/>, while another thread collects garbage and runs
/// finalizers without pause. Prints how many adds threw or summed wrong.
/// </summary>
public static class ScalarRace
{
    public static int Run(double seconds)
    {
        TorchNativeLoader.EnsureLoaded();
        foreach (var (name, add) in new (string, Func<Tensor, Tensor, Tensor>)[] { ("a + b", (a, b) => a + b), ("Scalars.Plus", Scalars.Plus) })
        {
            var stop = false;
            var collector = new Thread(() => { while (!Volatile.Read(ref stop)) { GC.Collect(); GC.WaitForPendingFinalizers(); } });
            collector.Start();
            long adds = 0, thrown = 0, wrong = 0;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                using var scope = NewDisposeScope();
                var (a, b) = (ones(4), ones(4));
                for (var i = 0; i < 1000; i++, adds++)
                {
                    try { if (add(a, b)[0].item<float>() != 2f) wrong++; }
                    catch (System.Runtime.InteropServices.ExternalException) { thrown++; }
                }
            }
            Volatile.Write(ref stop, true);
            collector.Join();
            Report.Line(("bench", "scalar-race"), ("add", name), ("adds", adds), ("thrown", thrown), ("wrong", wrong), ("seconds", seconds));
        }
        return 0;
    }
}
