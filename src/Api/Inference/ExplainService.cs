using SaliencyService.Api.Errors;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Contracts;
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
public sealed class ExplainService(ModelStore store, InferenceQueues queues, ServiceMetrics metrics, ExplanationCache cache,
    IOptions<SaliencyOptions> options)
{
    /// <summary>Reads a request's input once its model is leased: the model's descriptor says what the input must be.</summary>
    public delegate Task<ModelInput> InputSource(ModelDescriptor model, CancellationToken cancellationToken);

    /// <param name="readInput">The request's one sample (a multipart upload, a v2 tensor, ...), read under the request's time limit.</param>
    public async Task<Explanation> ExplainAsync(string name, InputSource readInput, ExplainRequest explainRequest,
        CancellationToken cancellationToken)
    {
        explainRequest.Validate();
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
            var input = await readInput(model.Descriptor, deadline.Token);
            if (input.Count != 1) throw ProblemException.BadRequest("This endpoint takes one input, not a batch.");
            try
            {
                var key = cache.Key(model.Descriptor.Sha256, input.Tensor, explainRequest);
                if (cache.TryGet(key, out var map))
                {
                    ServerTiming.Current?.Record("cache", TimeSpan.Zero, "hit");
                    return new Explanation(map, lease, input, cached: true);
                }

                var engine = $"explain:{explainer.Engine.Name}:{explainRequest.Method.Name}";
                map = await deadline.RunAsync(token => queues.Explain.RunAsync(t => metrics.Measure(engine, name,
                    () => Explainer.Explain(explainer, input.Tensor, explainRequest, model.Descriptor.Labels, model.Preprocessing.Layout, t)), token));
                NonFinite.Check(map.Outputs, "output");
                NonFinite.Check(map.Map, $"{explainRequest.Method.Name} map");
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
