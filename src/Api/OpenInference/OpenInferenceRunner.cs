using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Inference;
using SaliencyService.Api.Models;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// Runs one v2 inference, REST or gRPC: through the model's dynamic batcher where the inputs can
/// join a batch, else on the predict queue; both under the request time limit, as /v1's predict.
/// </summary>
public sealed class OpenInferenceRunner(PredictBatchers batchers, IOptions<SaliencyOptions> options)
{
    public async Task<NamedTensor[]> RunAsync(ServedModel model, InferWork work, CancellationToken cancellationToken)
    {
        using var deadline = new RequestDeadline(cancellationToken, TimeSpan.FromSeconds(options.Value.RequestTimeoutSeconds));
        var batcher = V2Inputs.Batchable(work.Inputs) ? batchers.For(model) : null;
        return await deadline.RunAsync(token => batcher is not null
            ? batcher.RunAsync(work, token)
            : batchers.RunAloneAsync(model, work.Samples, t => model.Onnx.Run(work.Inputs, work.Outputs, t), token));
    }
}
