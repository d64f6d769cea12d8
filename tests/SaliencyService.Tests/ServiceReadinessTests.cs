using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Ready means an import straight after it runs its isolated check on a warm child, as Triton
/// warms a model up before it reports it ready.
/// </summary>
public sealed class ServiceReadinessTests : IDisposable
{
    private readonly string _store = ServiceFactory.NewStoreDirectory();

    public void Dispose()
    {
        if (Directory.Exists(_store)) Directory.Delete(_store, recursive: true);
    }

    [Fact]
    public async Task The_service_is_ready_once_its_import_check_child_has_loaded_the_native_libraries()
    {
        // With some heap to fault in: the child says it is warm only after that too.
        using var service = await ServiceProcess.StartAsync(_store, new Dictionary<string, string> { ["Saliency__Explain__SpareHeapMegabytes"] = "64" });

        var spare = Assert.Single(service.Children(), child => child.Value.Contains("--saliency-child spare"));
        var mapped = File.ReadAllText($"/proc/{spare.Key}/maps");
        Assert.Contains("libtorch_cpu.so", mapped);
        Assert.Contains("libonnxruntime.so", mapped);
    }
}
