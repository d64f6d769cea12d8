using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;
using static TorchSharp.torch;

namespace SaliencyService.Bench;

/// <summary>
/// Writes the graphs a CUDA host runs for one model (standard ONNX, no engine kernels), for
/// bench/gpu/ort_cuda_bench to time where a GPU is: the served forward, the merged guided
/// backprop pass (one sample) and the merged pass that sums a batch's plain gradients
/// (integrated gradients', SmoothGrad's). Their inputs are the image and the target
/// (<see cref="BackwardGraph.Target"/>, −1: the top class); the batch dimension is free.
/// </summary>
public static class GpuGraphs
{
    public static int Run(string modelPath, string inputPath, string folder)
    {
        Directory.CreateDirectory(folder);
        var (session, provider) = OrtBaseline.CpuSession(modelPath);
        using var onnx = new OnnxModel(session, provider);
        var input = Npy.Read(File.ReadAllBytes(inputPath), long.MaxValue);
        var model = OnnxFile.Load(modelPath);
        using var mirror = GraphMirror.Build(model, onnx.Inputs[0].Name, onnx.Outputs[0].Name).Mirror ?? throw new InvalidOperationException("no mirror");
        File.Copy(modelPath, Path.Combine(folder, "forward.onnx"), overwrite: true);
        var written = new List<(string File, ModelProto Graph)> { ("forward.onnx", model) };
        // The name the next graph opened is written under; the passes' sessions open from the files written.
        string? next = "guided.onnx";
        InferenceSession Open(ModelProto graph)
        {
            if (next is null) return OrtBaseline.CpuSessions.Create(graph).Session;
            var (bytes, externalFolder) = OrtModelBytes.Of(graph);
            if (externalFolder is not null) throw new NotSupportedException("a model with external weights: write it with its weights inline");
            var path = Path.Combine(folder, next);
            File.WriteAllBytes(path, bytes);
            written.Add((next, graph));
            next = null;
            return OrtBaseline.CpuSession(path).Session;
        }
        using var backprop = OrtBackprop.Create(model, mirror, input.Shape, batched: true, Open, onCpu: false);
        if (!backprop.Merged) throw new NotSupportedException("the model's opset keeps forward and backward apart: this tool writes merged passes only");
        using var scope = NewDisposeScope();
        next = "summed.onnx";
        backprop.Run(tensor(input.Data, input.Shape), -1, RectifierRule.Gradient, summed: true);
        foreach (var (file, graph) in written)
            Report.Line(("graph", file), ("nodes", graph.Graph.Node.Count), ("engine_kernels", graph.Graph.Node.Count(n => n.Domain == NativeOps.Domain)));
        return 0;
    }
}
