using SaliencyService.Contracts;
using SaliencyService.Explain.Attribution;
using SaliencyService.Explain.Rendering;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Bench;

/// <summary>
/// What a PNG answer costs beyond the map: the input picture rebuilt from a tensor upload, then
/// each method's default drawing and encoding, for a map made of INPUT (a [1, 3, H, W] tensor,
/// standing in for the map: its values' spread is what the drawing reads; Grad-CAM's is its first
/// plane, [H, W]).
/// </summary>
public static class RenderBaseline
{
    public static int Run(string inputPath, int repeats)
    {
        var input = Npy.Read(File.ReadAllBytes(inputPath), long.MaxValue);
        var (height, width) = ((int)input.Shape[2], (int)input.Shape[3]);
        var p = new Preprocessing("image", "NCHW", height, width, "RGB", 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        double Median(Action pass) => Report.Percentile(Report.Time(repeats, pass, warmUp: 3), 0.5);
        Report.Line(("stage", "input picture from the tensor"), ("p50_ms", Median(() => InputPicture.Pixels(input.Data, p))));
        foreach (var method in new[] { "guided-backprop", "gradient", "grad-cam" })
        {
            var m = AttributionMethods.Get(method);
            var cam = method == "grad-cam";
            var map = new AttributionMap(m, cam ? input.Data[..(height * width)] : input.Data, cam ? [height, width] : input.Shape[1..], 0, 0, [],
                new Dictionary<string, object>());
            var options = RenderOptions.Resolve(m, null, null, null, null, null);
            var bytes = 0;
            var ms = Median(() => bytes = SaliencyRenderer.Png(map, p, options, width, height, () => InputPicture.Pixels(input.Data, p)).Length);
            Report.Line(("stage", $"png, {method}'s default ({options.View})"), ("p50_ms", ms), ("bytes", bytes));
        }
        return 0;
    }
}
