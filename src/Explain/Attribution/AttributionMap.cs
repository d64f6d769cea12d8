namespace SaliencyService.Explain.Attribution;

/// <summary>
/// One explanation: the map (model-input shape without the batch dimension, in the model's own
/// layout), the explained target and its pre-softmax score, and the model's outputs for the sample.
/// </summary>
public sealed record AttributionMap(AttributionMethod Method, float[] Map, long[] MapShape, int Target, float Score, float[] Outputs);
