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
