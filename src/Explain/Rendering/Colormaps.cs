namespace SaliencyService.Explain.Rendering;

/// <summary>
/// Maps a value in [0, 1] to RGB. viridis and inferno are 9-stop piecewise-linear approximations
/// of matplotlib's maps; jet is MATLAB's formula; bwr is a blue–white–red diverging map.
/// </summary>
public static class Colormaps
{
    private static readonly (byte, byte, byte)[] Viridis =
        [(68, 1, 84), (72, 40, 120), (59, 82, 139), (44, 114, 142), (33, 145, 140), (39, 173, 129), (94, 201, 98), (170, 220, 50), (253, 231, 37)];

    private static readonly (byte, byte, byte)[] Inferno =
        [(0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85), (227, 89, 51), (249, 140, 10), (249, 201, 50), (252, 255, 164)];

    private static readonly Dictionary<string, Func<double, (byte R, byte G, byte B)>> Maps = new(StringComparer.OrdinalIgnoreCase)
    {
        ["jet"] = Jet,
        ["viridis"] = v => Stops(v, Viridis),
        ["inferno"] = v => Stops(v, Inferno),
        ["gray"] = v => { var g = Byte(v); return (g, g, g); },
        ["bwr"] = v => Stops(v, [(0, 0, 255), (255, 255, 255), (255, 0, 0)]),
    };

    public static IEnumerable<string> Names => Maps.Keys;

    /// <summary>
    /// How many colours <see cref="Table"/> holds: finer than a byte's steps on every map here (jet,
    /// the steepest, moves a channel by 4 × 255 over [0, 1]), as matplotlib draws from 256.
    /// </summary>
    public const int Levels = 1024;

    private static readonly Dictionary<string, byte[]> Tables = Maps.ToDictionary(map => map.Key, map =>
        Enumerable.Range(0, Levels).SelectMany(level => { var (r, g, b) = map.Value(level / (double)(Levels - 1)); return new[] { r, g, b }; }).ToArray(),
        StringComparer.OrdinalIgnoreCase);

    /// <summary>The map at <see cref="Levels"/> even steps over [0, 1], three bytes (RGB) each: a lookup per pixel.</summary>
    public static byte[] Table(string name) => Tables[name];

    private static (byte R, byte G, byte B) Jet(double v)
    {
        v = Math.Clamp(v, 0, 1);
        static byte Channel(double x) => Byte(1.5 - Math.Abs(4 * x));
        return (Channel(v - 0.75), Channel(v - 0.5), Channel(v - 0.25));
    }

    private static (byte, byte, byte) Stops(double v, (byte R, byte G, byte B)[] stops)
    {
        var position = Math.Clamp(v, 0, 1) * (stops.Length - 1);
        var i = Math.Min((int)position, stops.Length - 2);
        var t = position - i;
        byte Mix(byte a, byte b) => (byte)Math.Round(a + (b - a) * t);
        return (Mix(stops[i].R, stops[i + 1].R), Mix(stops[i].G, stops[i + 1].G), Mix(stops[i].B, stops[i + 1].B));
    }

    private static byte Byte(double v) => (byte)Math.Round(255 * Math.Clamp(v, 0, 1));
}
