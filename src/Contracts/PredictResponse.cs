namespace SaliencyService.Contracts;

/// <summary>Answer of POST /v1/models/{name}/predict: one entry per input, in upload order.</summary>
public sealed record PredictResponse(string Model, IReadOnlyList<Prediction> Predictions);

/// <summary>The highest scores of one input, highest first.</summary>
public sealed record Prediction(IReadOnlyList<ClassScore> Top);

/// <summary>A score as the model outputs it, with the manifest's label when there is one.</summary>
public sealed record ClassScore(int Index, string? Label, float Score);
