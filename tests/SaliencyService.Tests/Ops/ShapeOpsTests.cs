using SaliencyService.Explain.Onnx.Proto;
using Xunit;
using static SaliencyService.Tests.Ops.OnnxTestModel;

namespace SaliencyService.Tests.Ops;

public sealed class ShapeOpsTests
{
    [Fact]
    public void Flatten_reshape_and_transpose()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5]).Node("Flatten", ["x"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5]).Node("Flatten", ["x"], ["y"], Int("axis", 3)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5]).Node("Flatten", ["x"], ["y"], Int("axis", 0)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5]).Initializer("s", [0L, -1L, 10L], 3).Node("Reshape", ["x", "s"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4, 5]).Node("Transpose", ["x"], ["y"], Ints("perm", 0, 2, 3, 1)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4]).Node("Transpose", ["x"], ["y"]).Output("y"));
    }

    /// <summary>How PyTorch exports a channel shuffle: shape arithmetic feeding Reshape.</summary>
    [Fact]
    public void Shape_arithmetic_drives_a_channel_shuffle()
    {
        Parity.Check(new OnnxTestModel(13, [2, 6, 3, 3])
            .Node("Shape", ["x"], ["shape"])
            .Initializer("i0", [0L], 1).Initializer("i2", [2L], 1).Initializer("i3", [3L], 1)
            .Initializer("groups", [2L], 1).Initializer("per_group", [3L], 1).Initializer("minus_one", [-1L], 1)
            .Node("Gather", ["shape", "i0"], ["n"], Int("axis", 0))
            .Node("Gather", ["shape", "i2"], ["h"], Int("axis", 0))
            .Node("Gather", ["shape", "i3"], ["w"], Int("axis", 0))
            .Node("Concat", ["n", "groups", "per_group", "h", "w"], ["split_shape"], Int("axis", 0))
            .Node("Reshape", ["x", "split_shape"], ["split"])
            .Node("Transpose", ["split"], ["shuffled"], Ints("perm", 0, 2, 1, 3, 4))
            .Node("Concat", ["n", "minus_one", "h", "w"], ["merged_shape"], Int("axis", 0))
            .Node("Reshape", ["shuffled", "merged_shape"], ["y"])
            .Output("y"));
    }

    [Fact]
    public void Shape_size_and_shape_slices_are_int64()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4]).Node("Shape", ["x"], ["y"]).Output("y", TensorProto.Types.DataType.Int64));
        Parity.Check(new OnnxTestModel(15, [2, 3, 4, 5]).Node("Shape", ["x"], ["y"], Int("start", 1), Int("end", -1)).Output("y", TensorProto.Types.DataType.Int64));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4]).Node("Size", ["x"], ["y"]).Output("y", TensorProto.Types.DataType.Int64));
    }

    [Fact]
    public void Concat_and_split()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4]).Initializer("c", Parity.RandomInput([2 * 2 * 4], 9, -1, 1), 2, 2, 4)
            .Node("Concat", ["x", "c", "x"], ["y"], Int("axis", 1)).Output("y"));
        Parity.Check(new OnnxTestModel(11, [2, 6, 4]).Node("Split", ["x"], ["a", "b"], Int("axis", 1), Ints("split", 2, 4)).Output("a").Output("b"));
        Parity.Check(new OnnxTestModel(13, [2, 6, 4]).Initializer("sizes", [1L, 5L], 2).Node("Split", ["x", "sizes"], ["a", "b"], Int("axis", 1)).Output("a").Output("b"));
        Parity.Check(new OnnxTestModel(13, [2, 6, 4]).Node("Split", ["x"], ["a", "b", "c"], Int("axis", -2)).Output("a").Output("b").Output("c"));
    }

    [Fact]
    public void Slice_in_attribute_and_input_forms_with_negative_steps()
    {
        Parity.Check(new OnnxTestModel(9, [4, 6, 5]).Node("Slice", ["x"], ["y"], Ints("starts", 1, 0), Ints("ends", 3, -1), Ints("axes", 0, 2)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [4, 6, 5])
            .Initializer("starts", [0L, -1L], 2).Initializer("ends", [100L, -100L], 2).Initializer("axes", [1L, 2L], 2).Initializer("steps", [2L, -2L], 2)
            .Node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [4, 6])
            .Initializer("starts", [1L], 1).Initializer("ends", [3L], 1)
            .Node("Slice", ["x", "starts", "ends"], ["y"]).Output("y"));
    }

    /// <summary>A float step that does not divide the span (4 values), a negative integer step.</summary>
    [Fact]
    public void Range_of_float_and_negative_integer_steps()
    {
        Parity.Check(new OnnxTestModel(11, [2, 4])
            .Initializer("start", [0.5f]).Initializer("limit", [5.5f]).Initializer("delta", [1.3f])
            .Node("Range", ["start", "limit", "delta"], ["r"]).Node("Add", ["x", "r"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(11, [2, 3])
            .Initializer("start", [10L]).Initializer("limit", [2L]).Initializer("delta", [-3L])
            .Node("Range", ["start", "limit", "delta"], ["r"])
            .Node("Cast", ["r"], ["f"], Int("to", (long)TensorProto.Types.DataType.Float))
            .Node("Add", ["x", "f"], ["y"]).Output("y"));
    }

    [Fact]
    public void Squeeze_and_unsqueeze_in_both_forms()
    {
        Parity.Check(new OnnxTestModel(11, [2, 1, 3, 1]).Node("Squeeze", ["x"], ["y"], Ints("axes", 1)).Output("y"));
        Parity.Check(new OnnxTestModel(11, [2, 1, 3, 1]).Node("Squeeze", ["x"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 1, 3, 1]).Initializer("axes", [-1L], 1).Node("Squeeze", ["x", "axes"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(11, [2, 3]).Node("Unsqueeze", ["x"], ["y"], Ints("axes", 0, 3)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3]).Initializer("axes", [1L, -1L], 2).Node("Unsqueeze", ["x", "axes"], ["y"]).Output("y"));
    }

    [Fact]
    public void Gather_with_negative_and_scalar_indices()
    {
        Parity.Check(new OnnxTestModel(13, [5, 4]).Initializer("i", [0L, -1L, 2L, 2L], 2, 2).Node("Gather", ["x", "i"], ["y"], Int("axis", 0)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [5, 4, 3]).Initializer("i", [-2L]).Node("Gather", ["x", "i"], ["y"], Int("axis", 1)).Output("y"));
    }

    [Fact]
    public void Constants_casts_and_identities()
    {
        var value = new TensorProto { DataType = (int)TensorProto.Types.DataType.Float };
        value.Dims.Add(3);
        value.FloatData.AddRange([1f, -2f, 3f]);
        Parity.Check(new OnnxTestModel(13, [2, 3])
            .Node("Constant", [], ["c"], TensorValue("value", value))
            .Node("Mul", ["x", "c"], ["m"])
            .Node("Identity", ["m"], ["i"])
            .Node("Dropout", ["i"], ["y"])
            .Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3])
            .Node("Constant", [], ["c"], Float("value_float", 2.5f))
            .Node("Add", ["x", "c"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3])
            .Node("Cast", ["x"], ["i"], Int("to", (long)TensorProto.Types.DataType.Int64))
            .Node("Cast", ["i"], ["y"], Int("to", (long)TensorProto.Types.DataType.Float)).Output("y"), low: -5, high: 5);
        Parity.Check(new OnnxTestModel(13, [2, 3])
            .Node("Shape", ["x"], ["s"])
            .Node("ConstantOfShape", ["s"], ["ones"], TensorValue("value", new TensorProto { DataType = 1, Dims = { 1 }, FloatData = { 1.5f } }))
            .Node("Add", ["x", "ones"], ["y"]).Output("y"));
    }

    [Fact]
    public void Expand_tile_and_range()
    {
        Parity.Check(new OnnxTestModel(13, [3, 1]).Initializer("s", [2L, 3L, 4L], 3).Node("Expand", ["x", "s"], ["y"]).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3]).Initializer("r", [2L, 3L], 2).Node("Tile", ["x", "r"], ["y"]).Output("y"));
    }

    /// <summary>What Swin's shifted-window masks are made of.</summary>
    [Fact]
    public void Mod_and_scatter_nd()
    {
        Parity.Check(new OnnxTestModel(13, [2, 3, 4]).Initializer("d", [0.75f]).Node("Mod", ["x", "d"], ["y"], Int("fmod", 1)).Output("y"));
        Parity.Check(new OnnxTestModel(13, [2, 3, 4])
            .Initializer("indices", [0L, 1L, 1L, 2L, -1L, 0L], 3, 2)
            .Initializer("updates", Parity.RandomInput([3 * 4], 21, -1, 1), 3, 4)
            .Node("ScatterND", ["x", "indices", "updates"], ["y"]).Output("y"));
    }
}
