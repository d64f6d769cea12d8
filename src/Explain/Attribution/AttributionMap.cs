namespace SaliencyService.Explain.Attribution;

/// <summary>
/// One explanation: the map (model-input shape without the batch dimension in the model's own
/// layout; [H, W] for Grad-CAM), the explained target and its pre-softmax score, the model's
/// outputs for the sample, and the parameters as they were used.
/// </summary>
public sealed record AttributionMap(
    AttributionMethod Method,
    float[] Map,
    long[] MapShape,
    int Target,
    float Score,
    float[] Outputs,
    IReadOnlyDictionary<string, object> Parameters);
