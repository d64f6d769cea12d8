using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class ResizeOpsTests
{
    public static TheoryData<string, string, string> Modes => new()
    {
        { "nearest", "asymmetric", "floor" },
        { "nearest", "half_pixel", "round_prefer_floor" },
        { "nearest", "align_corners", "round_prefer_ceil" },
        { "nearest", "tf_half_pixel_for_nn", "ceil" },
        { "linear", "half_pixel", "round_prefer_floor" },
        { "linear", "pytorch_half_pixel", "round_prefer_floor" },
        { "linear", "align_corners", "round_prefer_floor" },
        { "linear", "asymmetric", "round_prefer_floor" },
        { "cubic", "half_pixel", "round_prefer_floor" },
        { "cubic", "align_corners", "round_prefer_floor" },
    };

    [Theory]
    [MemberData(nameof(Modes))]
    public void Resize_by_scales_and_by_sizes(string mode, string transform, string nearest)
    {
        var attributes = new[] { String("mode", mode), String("coordinate_transformation_mode", transform), String("nearest_mode", nearest) };
        Parity.Check(new OnnxTestModel(13, [1, 2, 5, 6]).Initializer("scales", [1f, 1f, 2f, 1.5f], 4)
            .Node("Resize", ["x", "", "scales"], ["y"], attributes).Output("y"));
        Parity.Check(new OnnxTestModel(13, [1, 2, 5, 6]).Initializer("sizes", [1L, 2L, 3L, 13L], 4)
            .Node("Resize", ["x", "", "", "sizes"], ["y"], attributes).Output("y"));
    }

    [Fact]
    public void Upsample_and_resize_10()
    {
        Parity.Check(new OnnxTestModel(9, [1, 2, 3, 4]).Initializer("scales", [1f, 1f, 2f, 2f], 4)
            .Node("Upsample", ["x", "scales"], ["y"], String("mode", "nearest")).Output("y"));
        Parity.Check(new OnnxTestModel(9, [1, 2, 3, 4]).Initializer("scales", [1f, 1f, 2f, 3f], 4)
            .Node("Upsample", ["x", "scales"], ["y"], String("mode", "linear")).Output("y"));
        Parity.Check(new OnnxTestModel(7, [1, 2, 3, 4])
            .Node("Upsample", ["x"], ["y"], String("mode", "nearest"), Floats("scales", 1f, 1f, 2f, 2f)).Output("y"));
        Parity.Check(new OnnxTestModel(10, [1, 2, 3, 4]).Initializer("scales", [1f, 1f, 2f, 2f], 4)
            .Node("Resize", ["x", "scales"], ["y"], String("mode", "linear")).Output("y"));
    }
}
