namespace SaliencyService.Contracts;

/// <summary>GET /v1/methods: the attribution methods and the drawing options explain takes.</summary>
public sealed record MethodsResponse(
    IReadOnlyList<MethodDescriptor> Methods,
    IReadOnlyList<string> Views,
    IReadOnlyList<string> Colormaps,
    IReadOnlyList<string> Signs,
    IReadOnlyList<string> Formats);

/// <summary>One method: its query parameters and how its map is drawn unless the request says otherwise.</summary>
/// <param name="Cam">Its map is [H, W] (a class-activation map), not the input's shape.</param>
public sealed record MethodDescriptor(string Name, bool Cam, IReadOnlyList<string> Parameters, RenderDefaults Defaults);

public sealed record RenderDefaults(string View, string Colormap, string Sign, double Clip, double Alpha);
