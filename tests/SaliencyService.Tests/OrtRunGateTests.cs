using Microsoft.ML.OnnxRuntime.Tensors;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// <see cref="OrtRunGate"/>: a measurement (a Winograd race's round) waits for the process's own
/// runs to pause and holds new ones off for its round; past its patience it holds nothing. The gate
/// is the process's, so these run after the parallel tests; what those left running (a backward
/// built after a test's import) may still come and go, so each wait here is generous and only its
/// direction is asserted.
/// </summary>
[Collection(nameof(AloneInTheProcess))]
public class OrtRunGateTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60), Blocked = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task A_measurement_waits_for_a_run_in_flight_and_new_runs_wait_for_its_round()
    {
        Task<OrtRunGate.Hold> measuring;
        using (OrtRunGate.Run())
        {
            measuring = Task.Run(() => OrtRunGate.Measure(Generous));
            await Task.Delay(Blocked);
            Assert.False(measuring.IsCompleted, "a measurement began while a run was in flight");
        }
        var measurement = await measuring.WaitAsync(Generous);
        Assert.True(measurement.Alone);

        var running = Task.Run(OrtRunGate.Run);
        await Task.Delay(Blocked);
        Assert.False(running.IsCompleted, "a run began during a measurement's round");
        measurement.Dispose();
        (await running.WaitAsync(Generous)).Dispose();
    }

    [Fact]
    public async Task A_measurement_past_its_patience_holds_nothing_and_stops_no_run()
    {
        using (OrtRunGate.Run())
        {
            var impatient = OrtRunGate.Measure(TimeSpan.FromMilliseconds(50));
            Assert.False(impatient.Alone);
            (await Task.Run(OrtRunGate.Run).WaitAsync(Generous)).Dispose();
            impatient.Dispose(); // holds nothing, so lets nothing go
        }
        // The counts are even again: a patient measurement gets its round.
        using var measurement = OrtRunGate.Measure(Generous);
        Assert.True(measurement.Alone);
    }

    [Fact]
    public async Task A_served_model_runs_through_the_gate()
    {
        var session = TestSessions.Open(new OnnxTestModel(13, [1, 3]).Node("Relu", ["x"], ["y"]).Output("y").Model());
        using var onnx = new OnnxModel(session, OnnxSessionFactory.Cpu);
        var input = new NamedTensor("x", TensorElementType.Float, [1, 3], new float[] { -1, 0, 2 });
        Task<NamedTensor[]> running;
        using (var measurement = OrtRunGate.Measure(Generous))
        {
            Assert.True(measurement.Alone);
            running = Task.Run(() => onnx.Run([input], ["y"]));
            await Task.Delay(Blocked);
            Assert.False(running.IsCompleted, "a prediction ran during a measurement's round");
        }
        Assert.Equal(new float[] { 0, 0, 2 }, (float[])(await running.WaitAsync(Generous))[0].Data);
    }

    [Fact]
    public void A_race_among_runs_that_never_pause_still_ends_and_says_so()
    {
        // Shapes of their own: races are kept for the process, by shape.
        WinogradRace.Outcome among;
        using (OrtRunGate.Run()) among = new WinogradRace(TestSessions.Open).Race(37, 19, 5, 6);
        Assert.Equal(0, among.RoundsAlone);
        if (!NativeOps.Available)
        {
            // Without the kernels a race fails before its rounds: the convolution stays ONNX Runtime's.
            Assert.Equal(WinogradRace.Outcome.Failed, among);
            return;
        }
        Assert.True(double.IsFinite(among.Kernel2), $"{among}");
        var alone = new WinogradRace(TestSessions.Open).Race(37, 19, 6, 5);
        Assert.InRange(alone.RoundsAlone, 1, WinogradRace.Rounds);
    }
}
