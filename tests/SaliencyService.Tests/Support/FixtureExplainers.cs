using System.Text.Json;
using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using Xunit;

namespace SaliencyService.Tests.Support;

/// <summary>The explain engine without HTTP: a model analysed as the import does, on the CPU.</summary>
public static class FixtureExplainers
{
    public static readonly OnnxSessionFactory Sessions = new(new OnnxRuntimeOptions { ExecutionProvider = "cpu" });

    /// <summary>The model's explainer (asserted to exist), its descriptor, its session and preprocessing; dispose the first and third.</summary>
    public static (ModelExplainer?, ExplainDescriptor, OnnxModel, Preprocessing) Analyse(string modelPath, bool ortBackward, Preprocessing preprocessing)
    {
        var (session, provider) = Sessions.Create(modelPath);
        var onnx = new OnnxModel(session, provider);
        var analysis = new ExplainAnalysis(new ExplainOptions { OrtBackward = ortBackward }, Sessions);
        var (explainer, descriptor) = analysis.Analyse(modelPath, onnx, preprocessing, onnx.Outputs[0].Name);
        Assert.True(explainer is not null, descriptor.Reason);
        return (explainer, descriptor, onnx, preprocessing);
    }

    /// <summary>
    /// One method's map of a reference case, explained in-process, against PyTorch's float64 map
    /// (<c>STEM.REFERENCE.npy</c>): within 1e-3 of the map's largest magnitude, for the same target.
    /// </summary>
    public static void AssertReferenceMap(ModelExplainer model, ReferenceCase c, string method, string reference, string layout)
    {
        var input = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(c.Model, c.Stem + ".tensor.npy")), long.MaxValue);
        var map = Explainer.Explain(model, input, new ExplainRequest(AttributionMethods.Parse(method)), null, layout);
        var expected = Npy.Read(File.ReadAllBytes(TestPaths.Fixture(c.Model, $"{c.Stem}.{reference}.npy")), long.MaxValue).Data;
        var scale = expected.Max(Math.Abs);
        var error = expected.Zip(map.Map, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(error <= 1e-3 * scale, $"{c}, {method}: max abs error {error} vs max |reference| {scale}");
        Assert.Equal(c.Target, map.Target);
    }

    /// <summary>The fixture's own preprocessing (model.json); the maps are taken from its tensors.</summary>
    public static Preprocessing Preprocessing(string fixture)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture(fixture, "model.json")));
        var r = json.RootElement;
        double[] Numbers(string name) => r.GetProperty(name).EnumerateArray().Select(e => e.GetDouble()).ToArray();
        return new Preprocessing(r.GetProperty("input").GetString()!, r.GetProperty("layout").GetString()!, r.GetProperty("height").GetInt32(),
            r.GetProperty("width").GetInt32(), r.GetProperty("channels").GetString()!, r.GetProperty("scale").GetDouble(), Numbers("mean"), Numbers("std"));
    }
}
