namespace SaliencyService.Explain.Serving;

/// <summary>
/// Keeps this process's own ONNX Runtime runs (predictions, maps' passes) out of a measurement's
/// way: a <see cref="Mirror.WinogradRace"/> round is a few milliseconds on every core, run once an
/// import has answered, as its first predictions come. Sharing the cores with them, its ONNX
/// Runtime side read up to twice its time in 9 of 16 races, and the forward's F(2×2) lost races it
/// wins (bench/analysis.md, fifty-fourth and fifty-fifth passes). A measurement waits for a moment
/// when no run is in flight and holds it for one round; runs that come meanwhile wait for that
/// round, never for a run.
/// </summary>
public static class OrtRunGate
{
    private static readonly object Sync = new();
    private static int _running;
    private static bool _measuring;

    /// <summary>A hold on the gate, let go by disposing it (<c>default</c>: none).</summary>
    public readonly struct Hold : IDisposable
    {
        private enum Kind : byte { None, Run, Measurement }

        private readonly Kind _kind;

        private Hold(Kind kind) => _kind = kind;

        internal static Hold OfRun => new(Kind.Run);
        internal static Hold OfMeasurement => new(Kind.Measurement);

        /// <summary>Whether this is a measurement's hold (false: a run's, or none).</summary>
        public bool Alone => _kind == Kind.Measurement;

        public void Dispose()
        {
            if (_kind == Kind.None) return;
            lock (Sync)
            {
                if (Alone) _measuring = false;
                else _running--;
                // A round's end lets the waiting runs go; the last run's end, a waiting measurement.
                if (Alone || _running == 0) Monitor.PulseAll(Sync);
            }
        }
    }

    /// <summary>Held around one serving run: waits while a measurement's round runs.</summary>
    public static Hold Run()
    {
        lock (Sync)
        {
            while (_measuring) Monitor.Wait(Sync);
            _running++;
        }
        return Hold.OfRun;
    }

    /// <summary>
    /// Waits up to <paramref name="patience"/> for a moment when no run is in flight and no other
    /// measurement holds the gate, and holds it from then; past it, no hold (<see cref="Hold.Alone"/>
    /// false): under a load that never pauses, a measurement times among the runs rather than
    /// stalling them.
    /// </summary>
    public static Hold Measure(TimeSpan patience)
    {
        var deadline = Environment.TickCount64 + (long)patience.TotalMilliseconds;
        lock (Sync)
        {
            while (_running > 0 || _measuring)
            {
                var left = deadline - Environment.TickCount64;
                if (left <= 0) return default;
                Monitor.Wait(Sync, (int)Math.Min(left, int.MaxValue));
            }
            _measuring = true;
        }
        return Hold.OfMeasurement;
    }
}
