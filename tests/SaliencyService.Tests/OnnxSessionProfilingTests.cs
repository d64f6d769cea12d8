using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// <see cref="OnnxRuntimeOptions.ProfilePrefix"/> profiles the sessions the service runs, but not a
/// Winograd race's own single-node ones: the profiler's cost on a sub-millisecond run moved the
/// races' outcomes, so a profiled service took other kernels than an unprofiled one.
/// </summary>
public sealed class OnnxSessionProfilingTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("ort-profile").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void A_races_session_writes_no_trace_where_the_same_graph_under_another_name_does()
    {
        var factory = new OnnxSessionFactory(new OnnxRuntimeOptions { ExecutionProvider = "cpu", ProfilePrefix = Path.Combine(_folder, "trace") });
        long[] shape = [1, 2, 4, 4];
        var race = WinogradRace.Model(shape, 2, new float[2 * 2 * 9], "Conv", "", BackwardGraph.Attribute("pads", [1, 1, 1, 1]));
        Assert.Equal(WinogradRace.GraphName, race.Graph.Name);
        var served = race.Clone();
        served.Graph.Name = "served";

        RunOnce(factory, race, shape);
        Assert.Empty(Directory.GetFiles(_folder));
        RunOnce(factory, served, shape);
        Assert.Single(Directory.GetFiles(_folder)); // the trace is written as the session is disposed
    }

    private static void RunOnce(OnnxSessionFactory factory, Explain.Onnx.Proto.ModelProto model, long[] shape)
    {
        using var session = factory.Create(model).Session;
        using var x = OrtValue.CreateTensorValueFromMemory(new float[FloatTensor.ElementCount(shape)], shape);
        using var runOptions = new RunOptions();
        session.Run(runOptions, ["x"], [x], ["y"]).Dispose();
    }
}
