using System.Globalization;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Bench;

/// <summary>
/// Paired rounds: each round times one in-process ONNX Runtime <c>Run</c> with the service's session
/// options, one on a bare default session (<see cref="OrtBaseline.BareSession"/>), one HTTP tensor
/// predict, one HTTP guided-backprop and one HTTP Grad-CAM explain of the same model and input, back
/// to back (the order turns each round). On a shared machine whose speed drifts by tens of percent within a minute, only
/// figures taken side by side compare fairly; each ratio is the median of the per-round ratios.
/// </summary>
public static class PairedBaseline
{
    public static int Run(string modelPath, string inputPath, string modelUrl, int rounds)
    {
        var (session, _) = OrtBaseline.CpuSession(modelPath);
        using var owned = session;
        // Its threads spin during its own Run only, so they take no core from the service's next request.
        using var bare = OrtBaseline.BareSession(modelPath, stopSpinningAfterRun: true);
        var inputBytes = File.ReadAllBytes(inputPath);
        var input = Npy.Read(inputBytes, long.MaxValue);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };

        double Ort() => OrtBaseline.TimedRun(session, input);
        // The service's own account of each request (its Server-Timing header), by request kind and stage.
        var stages = new Dictionary<string, Dictionary<string, List<double>>>();
        double Post(string path) => Report.Milliseconds(() =>
        {
            using var form = new MultipartFormDataContent { { new ByteArrayContent(inputBytes), "tensor", "input.npy" } };
            using var response = http.PostAsync(modelUrl + path, form).GetAwaiter().GetResult();
            response.EnsureSuccessStatusCode();
            response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult();
            if (!response.Headers.TryGetValues("Server-Timing", out var timing)) return;
            var kind = stages.TryGetValue(path, out var known) ? known : stages[path] = [];
            foreach (var entry in string.Join(",", timing).Split(',', StringSplitOptions.TrimEntries))
            {
                var name = entry.Split(';')[0];
                var duration = entry.Split(';').FirstOrDefault(p => p.StartsWith("dur=", StringComparison.Ordinal));
                if (duration is null) continue;
                (kind.TryGetValue(name, out var list) ? list : kind[name] = []).Add(double.Parse(duration[4..], CultureInfo.InvariantCulture));
            }
        });

        var measures = new (string Name, Func<double> Once)[]
        {
            ("ort", Ort), ("bare_ort", () => OrtBaseline.TimedRun(bare, input)), ("http_predict", () => Post("/predict")),
            ("http_guided_backprop", () => Post("/explain?format=npy")), ("http_grad_cam", () => Post("/explain?method=grad-cam&format=npy")),
        };
        var times = measures.ToDictionary(m => m.Name, _ => new List<double>());
        for (var round = -3; round < rounds; round++) // three rounds of warm-up
        {
            if (round == 0) stages.Clear();
            for (var i = 0; i < measures.Length; i++)
            {
                var (name, once) = measures[(i + Math.Max(round, 0)) % measures.Length];
                var ms = once();
                if (round >= 0) times[name].Add(ms);
            }
        }

        foreach (var (name, ms) in times)
        {
            var sorted = ms.Order().ToArray();
            Report.Line(("paired", name), ("rounds", sorted.Length), ("p50_ms", Report.Percentile(sorted, 0.5)),
                ("min_ms", sorted[0]), ("max_ms", sorted[^1]));
        }
        foreach (var (path, byStage) in stages)
            Report.Line([("server_timing", path), .. byStage.Select(st => (st.Key + "_p50_ms", (object)Report.Percentile(st.Value.Order().ToArray(), 0.5)))]);
        Report.Line(("ratio", "predict_over_ort"), ("median", MedianRatio(times["http_predict"], times["ort"])));
        Report.Line(("ratio", "guided_backprop_over_predict"), ("median", MedianRatio(times["http_guided_backprop"], times["http_predict"])));
        Report.Line(("ratio", "predict_over_bare_ort"), ("median", MedianRatio(times["http_predict"], times["bare_ort"])));
        Report.Line(("ratio", "guided_backprop_over_bare_ort"), ("median", MedianRatio(times["http_guided_backprop"], times["bare_ort"])));
        Report.Line(("ratio", "grad_cam_over_predict"), ("median", MedianRatio(times["http_grad_cam"], times["http_predict"])));
        return 0;
    }

    private static double MedianRatio(List<double> ours, List<double> theirs) =>
        Report.Percentile(ours.Zip(theirs, (a, b) => a / b).Order().ToArray(), 0.5);
}
