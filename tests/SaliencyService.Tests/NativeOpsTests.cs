using System.Net;
using SaliencyService.Explain.Serving;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The engine's own ONNX Runtime kernels (src/Explain/Native): built beside the assemblies where
/// g++ is present, and a service without them still explains with standard operators. Their
/// results are checked against libtorch's float64 autograd in GradientRuleTests and against the
/// PyTorch fixtures in ExplainApiTests.
/// </summary>
public sealed class NativeOpsTests
{
    [Fact]
    public void The_kernels_are_built_beside_the_assemblies() =>
        Assert.True(NativeOps.Available, "libsaliency_ops.so is not beside the test assembly: the build found no g++ (apt-get install g++, then rebuild)");

    /// <summary>The Keras CNN's seven MaxPools, their backward by Indices and a scatter, against PyTorch's float64 map.</summary>
    [Fact]
    public async Task Without_them_guided_backprop_matches_the_reference()
    {
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var service = await ServiceProcess.StartAsync(store, new Dictionary<string, string> { ["SALIENCY_NATIVE_OPS"] = "0" });
            await Http.ImportFixtureAsync(service.Client, "seed_cnn");
            foreach (var stem in new[] { "input0", "input1" })
            {
                using var form = Http.TensorForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", stem + ".tensor.npy")));
                var response = await service.Client.PostAsync("/v1/models/seed_cnn/explain?method=guided-backprop&format=npy", form);
                Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
                ReferenceMaps.AssertMatches("seed_cnn", stem + ".guided_backprop.npy", await response.Content.ReadAsByteArrayAsync());
            }
        }
        finally
        {
            if (Directory.Exists(store)) Directory.Delete(store, recursive: true);
        }
    }
}
