using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Torch;

namespace SaliencyService.Api.Observability;

/// <summary>
/// The service's Prometheus metrics: requests and latency per route and method, time spent in
/// ONNX Runtime and in the explain mirror, queue occupancy and models loaded.
/// </summary>
public sealed class ServiceMetrics(ModelStore store, InferenceQueues queues)
{
    private readonly ConcurrentDictionary<(string Route, string Method, int Status), long[]> _requests = new();
    private readonly ConcurrentDictionary<(string Route, string Method), Histogram> _latency = new();
    private readonly ConcurrentDictionary<string, Histogram> _engine = new();
    private long _batches;
    private long _batchedSamples;

    public void RecordRequest(string route, string method, int status, TimeSpan duration)
    {
        Interlocked.Increment(ref _requests.GetOrAdd((route, method, status), _ => new long[1])[0]);
        _latency.GetOrAdd((route, method), _ => new Histogram()).Observe(duration);
    }

    /// <summary>
    /// Runs engine work inside a trace span and records its duration under <paramref name="engine"/>
    /// (<c>onnxruntime</c> for predictions; <c>explain:{gradient engine}:{method}</c> for explanations,
    /// the engine being <c>onnxruntime</c> or <c>libtorch</c>).
    /// </summary>
    public T Measure<T>(string engine, string model, Func<T> work)
    {
        using var span = Tracing.Source.StartActivity(engine);
        span?.SetTag("saliency.model", model);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var result = work();
        _engine.GetOrAdd(engine, _ => new Histogram()).Observe(System.Diagnostics.Stopwatch.GetElapsedTime(started));
        return result;
    }

    /// <summary>Counts one dynamically batched ONNX Runtime run of <paramref name="samples"/> samples.</summary>
    public void RecordBatch(int samples)
    {
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _batchedSamples, samples);
    }

    /// <summary>The Prometheus text exposition format, version 0.0.4.</summary>
    public string Render()
    {
        var text = new StringBuilder();
        Header(text, "saliency_http_requests_total", "counter", "HTTP requests by route, method and status.");
        foreach (var ((route, method, status), count) in _requests.OrderBy(r => r.Key.ToString()))
            text.AppendLine($"saliency_http_requests_total{{route=\"{Escape(route)}\",method=\"{method}\",status=\"{status}\"}} {Interlocked.Read(ref count[0])}");

        WriteHistograms(text, "saliency_http_request_duration_seconds", "HTTP request latency by route and method.",
            _latency.Select(l => ($"route=\"{Escape(l.Key.Route)}\",method=\"{l.Key.Method}\"", l.Value)));
        WriteHistograms(text, "saliency_engine_duration_seconds", "Time in ONNX Runtime (predict, engine onnxruntime) and in explanations (engine explain:{gradient engine}:{method}), by engine.",
            _engine.Select(e => ($"engine=\"{Escape(e.Key)}\"", e.Value)));

        Header(text, "saliency_queue_requests", "gauge", "Requests running or waiting per work queue.");
        foreach (var queue in new[] { queues.Predict, queues.Explain })
            text.AppendLine($"saliency_queue_requests{{queue=\"{queue.Name}\"}} {queue.Admitted}");

        Header(text, "saliency_predict_batches_total", "counter", "ONNX Runtime runs made by the dynamic batcher.");
        text.AppendLine($"saliency_predict_batches_total {Interlocked.Read(ref _batches)}");
        Header(text, "saliency_predict_batched_samples_total", "counter", "Samples in those runs (divided by the runs: the mean batch size).");
        text.AppendLine($"saliency_predict_batched_samples_total {Interlocked.Read(ref _batchedSamples)}");

        var models = store.List();
        Header(text, "saliency_models_loaded", "gauge", "Models served, and how many of them can be explained.");
        text.AppendLine($"saliency_models_loaded{{explainable=\"true\"}} {models.Count(m => m.Explain.Supported)}");
        text.AppendLine($"saliency_models_loaded{{explainable=\"false\"}} {models.Count(m => !m.Explain.Supported)}");
        Header(text, "saliency_models_gradient_engine", "gauge", "Explainable models by the engine that computes their gradients (chosen at import against float64).");
        foreach (var engine in new[] { GradientEngines.OnnxRuntime, GradientEngines.LibTorch })
            text.AppendLine($"saliency_models_gradient_engine{{engine=\"{engine}\"}} {models.Count(m => m.Explain.GradientEngine == engine)}");

        Header(text, "saliency_store_sync_events_total", "counter", "Changes this replica picked up from the shared store (import, replace, delete) and model folders it failed to load (failure), or failed to read (error).");
        foreach (var kind in new[] { "import", "replace", "delete", "failure", "error" })
            text.AppendLine($"saliency_store_sync_events_total{{kind=\"{kind}\"}} {store.SyncEvents.GetValueOrDefault(kind)}");
        Header(text, "saliency_models_failed", "gauge", "Model folders in the store that failed to load on this replica.");
        text.AppendLine($"saliency_models_failed {store.Failed.Count}");

        static string Shape((long Outputs, long Inputs, long Height, long Width) s) => $"{s.Outputs}x{s.Inputs}x{s.Height}x{s.Width}";
        var races = WinogradRace.Raced.OrderBy(r => r.Shape).Select(r => (Shape: Shape(r.Shape), Label: "", r.Outcome.RoundsAlone, Sides: new[]
            { ("onnxruntime", r.Outcome.Convolution), ("reorders", r.Outcome.Reorders), ("f2x2", r.Outcome.Kernel2), ("f4x4", r.Outcome.Kernel4) })).ToArray();
        var strided = WinogradRace.RacedStrided.OrderBy(r => r.Shape).Select(r => (Shape: Shape(r.Shape), Label: ",stride=\"2\"", r.Outcome.RoundsAlone, Sides: new[]
            { ("onnxruntime", r.Outcome.Convolution), ("stride2", r.Outcome.Kernel), ("columns", r.Outcome.Columns), ("transposed", r.Outcome.Transposed) })).ToArray();
        WriteRaces(text, "saliency_winograd_race_milliseconds", "The Winograd kernel's races in this process, by shape (output and input channels, height and width raced): each side's fastest run. A forward's F(2x2) is taken at (f2x2 + reorders) <= 0.9 onnxruntime, a backward's kernel at f4x4 (or f2x2 past 256x256 channels) <= 0.9 onnxruntime.", races);
        WriteRaces(text, "saliency_winograd_stride2_race_milliseconds", "The kernel's stride-2 races in this process, by shape (output and input channels, the input's height and width raced): each side's fastest run. A forward's stride-2 form is taken at stride2 <= 0.9 onnxruntime, a backward's transposed form at transposed <= columns (the product and scatter it replaces).", strided);
        Header(text, "saliency_winograd_race_rounds_alone", "gauge", $"Of each race's {WinogradRace.Rounds} rounds, those that held this process's own ONNX Runtime runs off; the others waited {WinogradRace.Patience.TotalMilliseconds} ms for them to pause, then timed among them.");
        foreach (var (shape, label, roundsAlone, _) in races.Concat(strided))
            text.AppendLine($"saliency_winograd_race_rounds_alone{{shape=\"{shape}\"{label}}} {roundsAlone}");

        if (TorchNativeLoader.OneDnn is { } oneDnn)
        {
            Header(text, "saliency_onednn_info", "gauge", "libtorch's oneDNN in this process: the instruction-set cap (default: none; none: oneDNN off) and the setting that chose it.");
            text.AppendLine($"saliency_onednn_info{{max_isa=\"{Escape(oneDnn.MaxIsa)}\",setting=\"{Escape(oneDnn.Setting)}\"}} 1");
        }
        return text.ToString();
    }

    /// <summary>Each race's sides by shape, in ms; a side that failed or was not raced has no line.</summary>
    private static void WriteRaces(StringBuilder text, string name, string help, IEnumerable<(string Shape, string Label, int RoundsAlone, (string Side, double Milliseconds)[] Sides)> races)
    {
        Header(text, name, "gauge", help);
        foreach (var (shape, _, _, sides) in races)
            foreach (var (side, milliseconds) in sides.Where(s => double.IsFinite(s.Milliseconds)))
                text.AppendLine($"{name}{{shape=\"{shape}\",side=\"{side}\"}} {milliseconds.ToString("G4", CultureInfo.InvariantCulture)}");
    }

    private static void WriteHistograms(StringBuilder text, string name, string help, IEnumerable<(string Labels, Histogram Histogram)> series)
    {
        Header(text, name, "histogram", help);
        foreach (var (labels, histogram) in series.OrderBy(s => s.Labels, StringComparer.Ordinal))
        {
            var (cumulative, sum, count) = histogram.Snapshot();
            for (var i = 0; i < cumulative.Length; i++)
            {
                var bound = i < Histogram.Buckets.Length ? Histogram.Buckets[i].ToString(CultureInfo.InvariantCulture) : "+Inf";
                text.AppendLine($"{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative[i]}");
            }
            text.AppendLine($"{name}_sum{{{labels}}} {sum.ToString(CultureInfo.InvariantCulture)}");
            text.AppendLine($"{name}_count{{{labels}}} {count}");
        }
    }

    /// <summary>The HELP and TYPE lines that open a metric family.</summary>
    private static void Header(StringBuilder text, string name, string type, string help)
    {
        text.AppendLine($"# HELP {name} {help}");
        text.AppendLine($"# TYPE {name} {type}");
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\").Replace("\"", "\\\"");
}
