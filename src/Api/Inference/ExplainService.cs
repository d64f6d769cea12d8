using SaliencyService.Api.Errors;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Contracts;
using SaliencyService.Api.Observability;
using SaliencyService.Explain;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Engine;

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

    /// <summary>
    /// The map. A native failure of libtorch's mirror on this input (a free image size too small for
    /// the model's kernels) is the input's where the served model cannot run on it either: then a
    /// 422, as ONNX Runtime's own failures are (<see cref="Problems"/>); otherwise a fault of ours.
    /// </summary>
    private static AttributionMap Explain(ServedModel model, ModelExplainer explainer, ModelInput input, ExplainRequest request,
        CancellationToken cancellationToken)
    {
        try
        {
            return Explainer.Explain(explainer, input.Tensor, request, model.Descriptor.Labels, model.Preprocessing.Layout, cancellationToken);
        }
        catch (ExternalException e) when (!cancellationToken.IsCancellationRequested && !Runs(model, input))
        {
            throw new UnsupportedModelException(Problems.CannotRun(e));
        }
    }

    /// <summary>Whether the served model runs on the input.</summary>
    private static bool Runs(ServedModel model, ModelInput input)
    {
        try
        {
            Predictor.Scores(model, input.Tensor);
            return true;
        }
        catch (OnnxRuntimeException)
        {
            return false;
        }
    }

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
                    () => Explain(model, explainer, input, explainRequest, t)), token));
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
