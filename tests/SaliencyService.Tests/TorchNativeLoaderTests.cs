using SaliencyService.Explain.Torch;
using TorchSharp;
using Xunit;

namespace SaliencyService.Tests;

public sealed class TorchNativeLoaderTests
{
    [Fact]
    public void Libtorch_loads_and_computes_with_autograd()
    {
        TorchNativeLoader.EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { -1, 2, 3 }).requires_grad_();
        var y = (x * x).sum();
        y.backward();
        Assert.Equal(new float[] { -2, 4, 6 }, x.grad!.data<float>().ToArray());
    }
}

/// <summary>
/// A host whose temp folder cannot be written (a read-only root file system without a /tmp volume):
/// the service starts, predicts and says why it does not explain, where the libstdc++ shim would
/// have to be written there; it aborted at start before. On a host whose libstdc++ needs no shim,
/// it explains as usual.
/// </summary>
public sealed class UnwritableTempTests : IDisposable
{
    private readonly string _store = Support.ServiceFactory.NewStoreDirectory();
    private readonly string _notAFolder = Path.GetTempFileName(); // a file: nothing can be created under it, not even by root

    public void Dispose()
    {
        File.Delete(_notAFolder);
        Support.ServiceFactory.DeleteServiceFolder(_store);
    }

    [Fact]
    public async Task The_service_starts_and_predicts_and_explains_or_says_why_not()
    {
        using var service = await Support.ServiceProcess.StartAsync(_store, new Dictionary<string, string> { ["TMPDIR"] = _notAFolder });
        var imported = await Support.Http.ImportFixtureAsync(service.Client, "mini_resnet", "m");
        using var form = Support.Http.ImageForm(Support.TestPaths.Fixture("mini_resnet", "input1.png"));
        Assert.Equal(System.Net.HttpStatusCode.OK, (await service.Client.PostAsync("/v1/models/m/predict", form)).StatusCode);
        if (imported.Explain.Supported) return; // this host's libstdc++ needs no shim
        Assert.Contains("writable temp folder", imported.Explain.Reason);
        Assert.Contains("writable temp folder", await service.Client.GetStringAsync("/health/ready"));
    }
}
