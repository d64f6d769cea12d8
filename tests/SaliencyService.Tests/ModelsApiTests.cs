using System.Net;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>POST/GET/DELETE /v1/models over HTTP, on a fresh store per test.</summary>
public sealed class ModelsApiTests : IDisposable
{
    private readonly ServiceFactory _factory = new();
    private readonly HttpClient _client;

    public ModelsApiTests() => _client = _factory.CreateClient();

    public void Dispose()
    {
        _client.Dispose();
        _factory.Dispose();
    }

    [Fact]
    public async Task Import_describes_the_model_and_writes_it_to_the_store()
    {
        var onnx = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx"));
        using var form = Http.ModelForm(onnx, "resnet-a", File.ReadAllText(TestPaths.Fixture("mini_resnet", "model.json")));
        var response = await _client.PostAsync("/v1/models", form);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/v1/models/resnet-a", response.Headers.Location?.OriginalString);
        var model = await Http.ReadAsync<ModelDescriptor>(response);
        Assert.Equal("resnet-a", model.Name);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(onnx)), model.Sha256);
        Assert.Equal(onnx.Length, model.SizeBytes);
        Assert.Equal("CPU", model.ExecutionProvider);
        var input = Assert.Single(model.Inputs);
        Assert.Equal(("input", "float32"), (input.Name, input.DataType));
        Assert.Equal([-1L, 3, 32, 32], input.Shape);
        Assert.Equal([-1L, 10], Assert.Single(model.Outputs).Shape);
        Assert.Equal(new Preprocessing("input", "NCHW", 32, 32, "RGB", 1 / 255.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            model.Preprocessing with { Mean = model.Preprocessing.Mean.ToArray(), Std = model.Preprocessing.Std.ToArray() },
            new PreprocessingComparer());
        Assert.Equal(10, model.Labels?.Count);
        Assert.NotNull(model.Explain);

        Assert.True(File.Exists(Path.Combine(_factory.Store, "resnet-a", "model.onnx")));
        Assert.True(File.Exists(Path.Combine(_factory.Store, "resnet-a", "model.json")));
        Assert.Empty(StagedUploads.In(_factory.Store));
    }

    [Fact]
    public async Task Defaults_come_from_the_model_when_no_manifest_is_sent()
    {
        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), name: null, fileName: "My_Seed.onnx");
        var model = await Http.ReadAsync<ModelDescriptor>(await _client.PostAsync("/v1/models", form));

        Assert.Equal("my_seed", model.Name); // the file name, lower-cased
        var p = model.Preprocessing;
        Assert.Equal(("image_input", "NHWC", 64, 64, "RGB", 1 / 255.0), (p.Input, p.Layout, p.Height, p.Width, p.Channels, p.Scale));
        Assert.Equal([0.0, 0, 0], p.Mean);
        Assert.Equal([1.0, 1, 1], p.Std);
        Assert.Null(model.Labels);
    }

    [Fact]
    public async Task List_get_and_delete()
    {
        await Http.ImportFixtureAsync(_client, "seed_cnn", "b-model");
        await Http.ImportFixtureAsync(_client, "mini_resnet", "a-model");

        var list = await Http.ReadAsync<ModelDescriptor[]>(await _client.GetAsync("/v1/models"));
        Assert.Equal(["a-model", "b-model"], list.Select(m => m.Name));
        var one = await Http.ReadAsync<ModelDescriptor>(await _client.GetAsync("/v1/models/b-model"));
        Assert.Equal(list[1].Sha256, one.Sha256);

        Assert.Equal(HttpStatusCode.NoContent, (await _client.DeleteAsync("/v1/models/b-model")).StatusCode);
        await Http.AssertProblemAsync(await _client.GetAsync("/v1/models/b-model"), HttpStatusCode.NotFound);
        await Http.AssertProblemAsync(await _client.DeleteAsync("/v1/models/b-model"), HttpStatusCode.NotFound);
        Assert.False(Directory.Exists(Path.Combine(_factory.Store, "b-model")));
        Assert.Equal(["a-model"], (await Http.ReadAsync<ModelDescriptor[]>(await _client.GetAsync("/v1/models"))).Select(m => m.Name));
    }

    [Fact]
    public async Task A_duplicate_name_is_a_409_and_replace_swaps_the_version()
    {
        var first = await Http.ImportFixtureAsync(_client, "seed_cnn", "shared-name");
        using (var again = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx")), "shared-name"))
            await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", again), HttpStatusCode.Conflict);
        Assert.Equal(first.Sha256, (await Http.ReadAsync<ModelDescriptor>(await _client.GetAsync("/v1/models/shared-name"))).Sha256);

        var replaced = await Http.ImportFixtureAsync(_client, "mini_resnet", "shared-name", replace: true);
        Assert.NotEqual(first.Sha256, replaced.Sha256);
        Assert.Equal(replaced.Sha256, (await Http.ReadAsync<ModelDescriptor>(await _client.GetAsync("/v1/models/shared-name"))).Sha256);
        Assert.Equal(new FileInfo(TestPaths.Fixture("mini_resnet", "model.onnx")).Length,
            new FileInfo(Path.Combine(_factory.Store, "shared-name", "model.onnx")).Length);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_factory.Store, ".trash")));

        // The replaced model now answers as mini_resnet does.
        using var form = Http.ImageForm(TestPaths.Fixture("mini_resnet", "input0.png"));
        var prediction = await Http.ReadAsync<PredictResponse>(await _client.PostAsync("/v1/models/shared-name/predict", form));
        Assert.Equal(ReferenceCases.Get("mini_resnet", "input0").Target, prediction.Predictions[0].Top[0].Index);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("UPPER")]
    [InlineData("-dash-first")]
    [InlineData("with space")]
    [InlineData("x123456789x123456789x123456789x123456789x123456789x123456789x1234")] // 65 characters
    public async Task An_invalid_name_is_a_400_and_writes_nothing(string name)
    {
        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), name);
        var detail = await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", form), HttpStatusCode.BadRequest);
        Assert.Contains("name", detail);
        AssertStoreHoldsNoModel();
    }

    [Fact]
    public async Task A_file_name_that_is_not_a_valid_name_needs_an_explicit_name()
    {
        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), name: null, fileName: "../../etc/passwd.onnx");
        var response = await _client.PostAsync("/v1/models", form);
        // The directory part of a client file name is never used: "passwd" is a valid name.
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.True(Directory.Exists(Path.Combine(_factory.Store, "passwd")));
    }

    [Theory]
    [InlineData("not a model at all")]
    [InlineData("")]
    public async Task A_file_that_is_not_onnx_is_a_422_with_the_runtime_reason(string content)
    {
        using var form = Http.ModelForm(System.Text.Encoding.UTF8.GetBytes(content), "broken");
        var detail = await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", form), HttpStatusCode.UnprocessableEntity);
        Assert.DoesNotContain(_factory.Store, detail); // no server paths leak
        AssertStoreHoldsNoModel();
    }

    [Fact]
    public async Task A_truncated_model_is_a_422()
    {
        var onnx = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx"));
        using var form = Http.ModelForm(onnx[..(onnx.Length / 2)], "truncated");
        await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", form), HttpStatusCode.UnprocessableEntity);
        AssertStoreHoldsNoModel();
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("{\"input\": \"no_such_input\"}")]
    [InlineData("{\"layout\": \"CHWN\"}")]
    [InlineData("{\"mean\": [1, 2]}")]
    [InlineData("{\"std\": [0]}")]
    [InlineData("{\"height\": 65}")] // the model's height is fixed at 64
    [InlineData("{\"channels\": \"GRAY\"}")] // the model has 3 channels
    public async Task A_manifest_that_cannot_describe_the_model_is_a_400(string manifest)
    {
        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), "seed", manifest);
        await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", form), HttpStatusCode.BadRequest);
        AssertStoreHoldsNoModel();
    }

    [Fact]
    public async Task A_missing_file_part_is_a_400_and_a_non_multipart_body_is_a_415()
    {
        using var form = new MultipartFormDataContent { { new StringContent("x"), "name" } };
        await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", form), HttpStatusCode.BadRequest);
        using var json = new StringContent("{}", System.Text.Encoding.UTF8, "application/json");
        await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", json), HttpStatusCode.UnsupportedMediaType);
        AssertStoreHoldsNoModel();
    }

    [Fact]
    public async Task A_multipart_body_cut_short_is_a_400_and_leaves_no_staging()
    {
        var onnx = File.ReadAllBytes(TestPaths.Fixture("mini_resnet", "model.onnx"));
        var head = System.Text.Encoding.ASCII.GetBytes("--cut\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.onnx\"\r\n\r\n");
        using var body = new ByteArrayContent([.. head, .. onnx[..5000]]); // no closing boundary
        body.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=cut");
        await Http.AssertProblemAsync(await _client.PostAsync("/v1/models", body), HttpStatusCode.BadRequest);
        AssertStoreHoldsNoModel();
    }

    [Fact]
    public async Task A_model_over_the_size_limit_is_a_413()
    {
        using var factory = new ServiceFactory(settings: new() { ["Saliency:MaxModelBytes"] = "100000" });
        using var client = factory.CreateClient();
        using var form = Http.ModelForm(File.ReadAllBytes(TestPaths.Fixture("seed_cnn", "model.onnx")), "big");
        await Http.AssertProblemAsync(await client.PostAsync("/v1/models", form), HttpStatusCode.RequestEntityTooLarge);
        Assert.Empty(StagedUploads.In(factory.Store));
    }

    private void AssertStoreHoldsNoModel()
    {
        Assert.Equal([".staging", ".trash"], Directory.EnumerateDirectories(_factory.Store).Select(Path.GetFileName).Order());
        Assert.Empty(StagedUploads.In(_factory.Store));
    }

    private sealed class PreprocessingComparer : IEqualityComparer<Preprocessing>
    {
        public bool Equals(Preprocessing? a, Preprocessing? b) =>
            a is not null && b is not null && a.Input == b.Input && a.Layout == b.Layout && a.Height == b.Height && a.Width == b.Width
            && a.Channels == b.Channels && Math.Abs(a.Scale - b.Scale) < 1e-12 && a.Mean.SequenceEqual(b.Mean) && a.Std.SequenceEqual(b.Std);

        public int GetHashCode(Preprocessing p) => p.Input.GetHashCode();
    }
}
