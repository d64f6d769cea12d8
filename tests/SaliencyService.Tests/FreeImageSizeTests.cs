using System.Net;
using SaliencyService.Explain.Tensors;
using SaliencyService.Tests.Ops;
using SaliencyService.Tests.Support;
using SixLabors.ImageSharp;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests;

/// <summary>
/// A model whose image height and width are free ([N, 3, H, W], as exporters write dynamic axes):
/// its import probes one size (the preprocessing's), and its tensors may have any other. Maps of
/// other sizes are right too, drawn at their own size; a size the model cannot take is a 422.
/// </summary>
public sealed class FreeImageSizeTests : IDisposable
{
    private readonly ServiceFactory _factory = new();

    // A 3×3 convolution of stride 2 without padding, averaged: linear, so its gradient is known exactly.
    private static readonly float[] Kernel = Parity.RandomInput([2 * 3 * 9], 11, -1, 1);

    private static byte[] Model() => new OnnxTestModel(13, [-1, 3, -1, -1])
        .Initializer("w", Kernel, 2, 3, 3, 3)
        .Node("Conv", ["x", "w"], ["c"], Ints("strides", 2, 2))
        .Node("GlobalAveragePool", ["c"], ["g"])
        .Node("Flatten", ["g"], ["y"])
        .Output("y").Bytes();

    [Theory]
    [InlineData(224, 224)] // the size the import probed: ONNX Runtime's backward
    [InlineData(9, 11)]    // another: libtorch autograd, as that backward was written for the probe's shapes
    public async Task The_gradient_of_an_input_of_any_size_is_exact_and_drawn_at_that_size(int height, int width)
    {
        using var client = await ImportedAsync();
        var input = Parity.RandomInput([1, 3, height, width], 12, 0, 1);
        using var form = Http.TensorForm(Npy.Write(input, [1, 3, height, width]));
        var map = Npy.Read(await Http.ReadBytesAsync(await client.PostAsync("/v1/models/free/explain?method=gradient&target=1&format=npy", form)), long.MaxValue);

        Assert.Equal([3L, height, width], map.Shape);
        var expected = Gradient(1, height, width);
        var scale = expected.Max(Math.Abs);
        Assert.True(expected.Zip(map.Data, (e, a) => Math.Abs(e - a)).Max() <= 1e-5 * scale);

        using var pngForm = Http.TensorForm(Npy.Write(input, [1, 3, height, width]));
        using var png = Image.Load(await Http.ReadBytesAsync(await client.PostAsync("/v1/models/free/explain?method=grad-cam&format=png", pngForm)));
        Assert.Equal((width, height), (png.Width, png.Height));
    }

    [Theory]
    [InlineData("predict")]
    [InlineData("explain?method=guided-backprop")]
    [InlineData("explain?method=grad-cam")]
    public async Task A_size_the_model_cannot_take_is_a_422(string call)
    {
        using var client = await ImportedAsync();
        using var form = Http.TensorForm(Npy.Write(new float[3], [1, 3, 1, 1])); // smaller than the 3×3 kernel
        var detail = await Http.AssertProblemAsync(await client.PostAsync("/v1/models/free/" + call, form), HttpStatusCode.UnprocessableEntity);
        Assert.Contains("cannot run on this input", detail);
    }

    public void Dispose() => _factory.Dispose();

    private async Task<HttpClient> ImportedAsync()
    {
        var client = _factory.CreateClient();
        using var form = Http.ModelForm(Model(), "free");
        var response = await client.PostAsync("/v1/models", form);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return client;
    }

    /// <summary>∂y[k]/∂x in float64: each output cell's mean share of the kernel over the cells it reads.</summary>
    private static double[] Gradient(int k, int height, int width)
    {
        var (oh, ow) = ((height - 3) / 2 + 1, (width - 3) / 2 + 1);
        var gradient = new double[3 * height * width];
        for (var c = 0; c < 3; c++)
        for (var oy = 0; oy < oh; oy++)
        for (var ox = 0; ox < ow; ox++)
        for (var ky = 0; ky < 3; ky++)
        for (var kx = 0; kx < 3; kx++)
            gradient[(c * height + 2 * oy + ky) * width + 2 * ox + kx] += Kernel[((k * 3 + c) * 3 + ky) * 3 + kx] / (double)(oh * ow);
        return gradient;
    }
}
