namespace SaliencyService.Explain.Rendering;

/// <summary>Maps a value in [0, 1] to RGB.</summary>
public static class Colormaps
{
    /// <summary>MATLAB's jet: blue → cyan → yellow → red.</summary>
    public static (byte R, byte G, byte B) Jet(float v)
    {
        v = Math.Clamp(v, 0, 1);
        static byte Channel(float x) => (byte)Math.Round(255 * Math.Clamp(1.5f - Math.Abs(4 * x), 0, 1));
        return (Channel(v - 0.75f), Channel(v - 0.5f), Channel(v - 0.25f));
    }
}
