namespace SaliencyService.Contracts;

/// <summary>
/// Answer of POST /v1/models/{name}/explain?format=json: the explained target and its
/// pre-softmax score, the model's top outputs, the method's parameters and the rendering as
/// they were used, and the map as a base64 PNG of width × height.
/// </summary>
public sealed record ExplainResponse(
    string Model,
    string Method,
    int Target,
    string? Label,
    float Score,
    IReadOnlyList<ClassScore> Top,
    IReadOnlyDictionary<string, object> Parameters,
    int Width,
    int Height,
    string Png);
