using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using SaliencyService.Contracts;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Isolation;
using SaliencyService.Explain.Torch;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// What a native crash may cost: an import check that dies is a 422 and the service serves on;
/// a oneDNN self-test that dies under a cap makes the service choose a narrower one (or oneDNN
/// off), decided before libtorch loads. Crashes are real (SIGFPE in a child process), set off
/// by the test-only hook <see cref="ChildCommands.FaultVariable"/>. And the spare child that
/// runs an import's check is warm before the service reports ready.
/// </summary>
public sealed class NativeIsolationTests : IDisposable
{
    private readonly string _store = ServiceFactory.NewStoreDirectory();
    private readonly string _temp = Path.Combine(Path.GetTempPath(), $"saliency-tmp-{Guid.NewGuid():N}");

    public void Dispose()
    {
        foreach (var directory in new[] { _store, _temp })
            ServiceFactory.DeleteServiceFolder(directory);
    }

    /// <summary>
    /// Ready means an import straight after it runs its check on a warm child, and the service's own
    /// side of an import has run once (on the bundled demo CNN, which it does not store), as Triton
    /// warms a model up before it reports it ready.
    /// </summary>
    [Fact]
    public async Task The_service_is_ready_once_its_import_check_child_has_loaded_the_native_libraries()
    {
        // With some heap to fault in: the child says it is warm only after that too.
        using var service = await ServiceProcess.StartAsync(_store, new Dictionary<string, string> { ["Saliency__Explain__SpareHeapMegabytes"] = "64" });

        var spare = Assert.Single(service.Children(), child => child.Value.Contains($"{ChildProcess.Flag} {ChildProcess.SpareVerb}"));
        var mapped = File.ReadAllText($"/proc/{spare.Key}/maps");
        Assert.Contains("libtorch_cpu.so", mapped);
        Assert.Contains("libonnxruntime.so", mapped);
        Assert.Contains("Import path warmed up", service.Output);
        Assert.Empty(await Http.ReadAsync<ModelDescriptor[]>(await service.Client.GetAsync("/v1/models")));
        Assert.Empty(Directory.EnumerateFiles(_store, "*", SearchOption.AllDirectories));
    }

    /// <param name="fault">
    /// Where the check dies: as it starts; once it has loaded and run the model (the service loads it
    /// too from then on); once it has built ONNX Runtime's backward (the service builds it too).
    /// </param>
    [Theory]
    [InlineData(ChildCommands.ImportCheck)]
    [InlineData(ImportCheck.Probed)]
    [InlineData(ImportCheck.BackwardOpened)]
    public async Task An_import_whose_check_crashes_is_refused_and_the_service_serves_on(string fault)
    {
        using var service = await ServiceProcess.StartAsync(_store, new Dictionary<string, string> { [ChildCommands.FaultVariable] = fault });
        var client = service.Client;

        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx")), "crashes",
            File.ReadAllText(TestPaths.Fixture("mini_resnet", "model.json")));
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models", form), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("SIGFPE", detail);

        Assert.False(service.HasExited);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/v1/models/crashes")).StatusCode);
        Assert.Empty(await Http.ReadAsync<ModelDescriptor[]>(await client.GetAsync("/v1/models")));
        Assert.Empty(Directory.EnumerateFiles(_store, "model.onnx", SearchOption.AllDirectories)); // nothing written, staging cleaned
    }

    [Fact]
    public async Task A_self_test_that_crashes_uncapped_makes_the_service_cap_onednn()
    {
        using var service = await StartWithSelfTestFault($"{ChildCommands.SelfTest}@DEFAULT");
        var (engine, metrics) = await EngineStatus(service.Client);
        // The widest cap whose self-test passes on this CPU: AVX512_CORE where only the crash fails
        // it, narrower where this CPU's oneDNN also fails a cap on its own (AMD Zen 5 fails AVX-512
        // and AVX2), oneDNN off where every cap fails.
        var cap = Regex.Match(metrics, "saliency_onednn_info\\{max_isa=\"([^\"]+)\",setting=\"auto\"\\} 1").Groups[1].Value;
        var caps = OneDnnGuard.Candidates.Skip(1).ToList();
        Assert.Contains(cap, caps.Append(OneDnnGuard.Off));
        Assert.Matches($"{OneDnnGuard.Default}: [^;]*SIGFPE", engine); // why the uncapped run was refused
        foreach (var wider in caps.TakeWhile(c => c != cap))
            Assert.Contains($"{wider}: ", engine); // each cap passed over, with why
        Assert.Contains(cap == OneDnnGuard.Off ? "oneDNN: off" : $"capped at {cap}", engine);
        await AssertExplainsRight(service.Client);
    }

    [Fact]
    public async Task A_self_test_that_crashes_at_every_cap_turns_onednn_off()
    {
        using var service = await StartWithSelfTestFault(ChildCommands.SelfTest);
        var (engine, metrics) = await EngineStatus(service.Client);
        Assert.Contains("oneDNN: off", engine);
        Assert.Contains($"saliency_onednn_info{{max_isa=\"{OneDnnGuard.Off}\",setting=\"auto\"}} 1", metrics);
        await AssertExplainsRight(service.Client);
    }

    [Fact]
    public void The_libtorch_kernels_pass_their_known_answer_test_under_the_automatic_choice()
    {
        // The regression test for libtorch 2.10's oneDNN on AMD Zen 5 (unwritten input-gradient
        // elements at batch 2, SIGFPE on ResNet-50's projections): float32 against float64 in this
        // process, under whatever the guard chose for this host.
        TorchNativeLoader.EnsureLoaded();
        Assert.NotNull(TorchNativeLoader.OneDnn);
        Assert.Null(OneDnnSelfTest.Run());
    }

    /// <summary>A fresh temporary folder: no cached verdict, so the service probes.</summary>
    private Task<ServiceProcess> StartWithSelfTestFault(string fault)
    {
        Directory.CreateDirectory(_temp);
        return ServiceProcess.StartAsync(_store, new Dictionary<string, string> { [ChildCommands.FaultVariable] = fault, ["TMPDIR"] = _temp });
    }

    private static async Task<(string Engine, string Metrics)> EngineStatus(HttpClient client)
    {
        using var ready = JsonDocument.Parse(await client.GetStringAsync("/health/ready"));
        var engine = ready.RootElement.GetProperty("checks").GetProperty("explain-engine").GetString()!;
        return (engine, await client.GetStringAsync("/metrics"));
    }

    /// <summary>Guided backprop of a fixture against PyTorch's float64 map, through the service.</summary>
    private static async Task AssertExplainsRight(HttpClient client)
    {
        var descriptor = await Http.ImportFixtureAsync(client, "mini_resnet");
        Assert.NotNull(descriptor.Explain.GradientEngine);
        var c = ReferenceCases.All.First(c => c.Model == "mini_resnet");
        using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", c.Stem + ".tensor.npy")));
        var bytes = await Http.ReadBytesAsync(await client.PostAsync("/v1/models/mini_resnet/explain?method=gradient&format=npy", form));
        var actual = SaliencyService.Explain.Tensors.Npy.Read(bytes, long.MaxValue).Data;
        var expected = SaliencyService.Explain.Tensors.Npy.Read(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", c.Stem + ".gradient.npy")), long.MaxValue).Data;
        var scale = expected.Max(Math.Abs);
        Assert.True(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() <= 1e-3 * scale);
    }
}
