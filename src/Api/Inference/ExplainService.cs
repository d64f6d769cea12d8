using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;

namespace SaliencyService.Api.Inference;

/// <summary>One explanation computed: the map, the model version and the input it was computed on (dispose it).</summary>
public sealed class Explanation(AttributionMap map, ModelLease lease, ModelInput input, bool cached) : IDisposable
{
    public AttributionMap Map { get; } = map;
    public ServedModel Model => lease.Model;
    public ModelInput Input { get; } = input;

    /// <summary>Served from the explanation cache.</summary>
    public bool Cached { get; } = cached;

    public void Dispose()
    {
        Input.Dispose();
        lease.Dispose();
    }
}

/// <summary>
/// Everything around computing a map that is not the map itself: the model's lease, the request's
/// time limit, reading the input, the explanation cache, the explain queue, engine metrics and the
/// check that the answer is finite. The endpoint only binds the request and writes the answer.
/// </summary>
public sealed class ExplainService(ModelStore store, ModelInputReader inputs, InferenceQueues queues, ServiceMetrics metrics,
    ExplanationCache cache, IOptions<SaliencyOptions> options)
{
    /// <param name="keepImages">Keep the uploaded images (to draw the map over them).</param>
    public async Task<Explanation> ExplainAsync(string name, HttpRequest request, ExplainRequest explainRequest, bool keepImages,
        CancellationToken cancellationToken)
    {
        var lease = store.Lease(name);
        try
        {
            var model = lease.Model;
            if (model.Explainer is not { } explainer)
            {
                var unsupported = model.Descriptor.Explain.UnsupportedOperators;
                throw ProblemException.Unprocessable($"Model '{name}' cannot be explained: {model.Descriptor.Explain.Reason}" +
                                                     (unsupported.Count > 0 ? " Unsupported: " + string.Join(", ", unsupported) + "." : ""));
            }

            using var deadline = new RequestDeadline(cancellationToken, TimeSpan.FromSeconds(options.Value.RequestTimeoutSeconds));
            var input = await inputs.ReadAsync(request, model.Descriptor, allowBatch: false, deadline.Token, keepImages);
            try
            {
                var p = model.Preprocessing;
                var fixedBatch = model.Descriptor.Inputs.First(i => i.Name == p.Input).Shape[0];
                var maxBatch = fixedBatch > 0 ? (int)fixedBatch : options.Value.Explain.MaxBatch;
                var key = cache.Key(model.Descriptor.Sha256, input.Tensor, explainRequest);
                if (cache.TryGet(key, out var map)) return new Explanation(map, lease, input, cached: true);

                var engine = $"explain:{explainer.Engine.Name}:{explainRequest.Method.Name()}";
                map = await deadline.RunAsync(token => queues.Explain.RunAsync(t => metrics.Measure(engine, name,
                    () => Explainer.Explain(explainer, input.Tensor, explainRequest, model.Descriptor.Labels, p.Layout, maxBatch, t)), token));
                NonFinite.Check(map.Outputs, "output");
                NonFinite.Check(map.Map, $"{explainRequest.Method.Name()} map");
                cache.Add(key, map);
                return new Explanation(map, lease, input, cached: false);
            }
            catch
            {
                input.Dispose();
                throw;
            }
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }
}
