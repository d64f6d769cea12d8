using System.Globalization;
using SaliencyService.Bench;

// In-process baselines for bench/run.sh, on the service's own engine code without HTTP; the modes
// are listed by Usage below. Each prints one JSON line per measurement.
// libtorch's oneDNN self-test (and any isolated check) runs in child processes of this binary.
SaliencyService.Explain.Isolation.ChildProcess.EntryAssembly = typeof(Report).Assembly.Location;
if (SaliencyService.Explain.Isolation.ChildCommands.TryRun(args, out var childExitCode)) return childExitCode;

return args switch
{
    ["ort", var model, var input, var seconds, var levels] => OrtBaseline.Run(model, input, Number(seconds), Levels(levels)),
    ["bare", var model, var input, var seconds, var levels] => OrtBaseline.Run(model, input, Number(seconds), Levels(levels), bare: true),
    ["mirror", var model, var input, var repeats, var methods] => MirrorBaseline.Run(model, input, int.Parse(repeats), methods.Split(',')),
    ["stages", var model, var input, var repeats] => StagesBaseline.Run(model, input, int.Parse(repeats)),
    ["paired", var model, var input, var url, var rounds] => PairedBaseline.Run(model, input, url, int.Parse(rounds)),
    ["gpu-graphs", var model, var input, var folder] => GpuGraphs.Run(model, input, folder),
    ["render", var input, var repeats] => RenderBaseline.Run(input, int.Parse(repeats)),
    ["winograd", var batch, var repeats] => WinogradBaseline.Run(int.Parse(batch), int.Parse(repeats), 0),
    ["winograd", var batch, var repeats, var flushMb] => WinogradBaseline.Run(int.Parse(batch), int.Parse(repeats), int.Parse(flushMb)),
    ["strided", var batch, var repeats] => StridedBaseline.Run(int.Parse(batch), int.Parse(repeats), 0),
    ["strided", var batch, var repeats, var flushMb] => StridedBaseline.Run(int.Parse(batch), int.Parse(repeats), int.Parse(flushMb)),
    ["scalar-race", var seconds] => ScalarRace.Run(Number(seconds)),
    _ => Usage(),
};

static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

static int[] Levels(string text) => [.. text.Split(',').Select(int.Parse)];

static int Usage()
{
    Console.Error.WriteLine("""
        usage: in-process MODE ARGS...
          ort    MODEL.onnx INPUT.npy SECONDS CONCURRENCY[,...]   ONNX Runtime Run by N threads at once (the service's session options)
          bare   MODEL.onnx INPUT.npy SECONDS CONCURRENCY[,...]   the same on a default session (spinning on), all cores
          mirror MODEL.onnx INPUT.npy REPEATS METHOD[,...]        the explain engine (mirror build + parity, then methods)
          stages MODEL.onnx INPUT.npy REPEATS                     served forward, recording forward and backward graph apart
          paired MODEL.onnx INPUT.npy MODEL_URL ROUNDS            ORT Run, HTTP predict and HTTP explain side by side
          gpu-graphs MODEL.onnx INPUT.npy FOLDER                  the graphs a CUDA host runs (forward, guided pass, summed pass), for bench/gpu
          render INPUT.npy REPEATS                                PNG answers: the input picture, each method's default drawing and encoding
          winograd BATCH REPEATS [FLUSH_MB]                       the engine's Winograd kernel against ONNX Runtime's Conv, ResNet's 3×3 shapes
                                                                  (with FLUSH_MB, that much memory touched before each call: caches as cold as in a pass)
          strided BATCH REPEATS [FLUSH_MB]                        the kernel's stride-2 forms against ONNX Runtime's Conv and ConvTranspose, ResNet's downsampling 3×3 shapes
          scalar-race SECONDS                                     tensor + tensor under a collecting thread, TorchSharp's against Scalars'
        """);
    return 2;
}
