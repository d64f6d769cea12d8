using Microsoft.ML.OnnxRuntime;
using SaliencyService.Explain.Mirror;
using SaliencyService.Explain.Onnx;
using SaliencyService.Explain.Onnx.Proto;

namespace SaliencyService.Explain.Serving;

/// <summary>
/// Creates ONNX Runtime sessions on CUDA when the CUDA provider loads on this host, else on CPU.
/// The GPU package carries the CUDA provider; on a host without the CUDA libraries appending it
/// fails, and that failure is the signal to stay on CPU.
/// </summary>
public sealed class OnnxSessionFactory
{
    public const string Cpu = "CPU";
    public const string Cuda = "CUDA";

    private readonly OnnxRuntimeOptions _options;
    private readonly Lazy<(bool Available, string Reason)> _cuda;

    public OnnxSessionFactory(OnnxRuntimeOptions options)
    {
        _options = options;
        _cuda = new Lazy<(bool, string)>(ProbeCuda);
    }

    public OnnxRuntimeOptions Settings => _options;

    /// <summary>Threads of one CPU run.</summary>
    public int IntraOpThreads => _options.IntraOpThreads > 0 ? _options.IntraOpThreads : Environment.ProcessorCount;

    /// <summary>The provider new sessions get, and why (for the start-up log).</summary>
    public (string Provider, string Reason) PreferredProvider =>
        _options.ExecutionProvider.Equals("cpu", StringComparison.OrdinalIgnoreCase)
            ? (Cpu, "configured")
            : _cuda.Value.Available ? (Cuda, "CUDA provider loaded") : (Cpu, _cuda.Value.Reason);

    /// <summary>
    /// Whether its sessions run on CPU: backward graphs written for them may use the engine's own
    /// kernels (<see cref="NativeOps"/>), which ONNX Runtime runs on CPU only.
    /// </summary>
    public bool RunsOnCpu => PreferredProvider.Provider == Cpu;

    /// <summary>
    /// Creates a session on a model file (an uploaded model); ONNX Runtime's own message explains a
    /// model it refuses. The engine's own kernels are not registered: they are for the graphs the
    /// service writes, and a model that names them is refused as one of an unknown domain.
    /// </summary>
    /// <param name="level">
    /// ONNX Runtime's graph optimizations: all of them, unless they crashed the import's check
    /// (<see cref="Engine.ImportCheck"/>: ONNX Runtime 1.31's float16 attention, at its fourth level).
    /// </param>
    /// <exception cref="OnnxRuntimeException">The file is not a model this runtime can run.</exception>
    public (InferenceSession Session, string Provider) Create(string modelPath, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL) =>
        Create(options => new InferenceSession(modelPath, options), nativeOps: false, profiled: true, level);

    /// <summary>
    /// Creates a session on a model held in memory (one the service wrote), as <see cref="Create(string, GraphOptimizationLevel)"/>
    /// does; weights that are views of a mapped model file are read from that file (<see cref="OrtModelBytes"/>).
    /// </summary>
    public (InferenceSession Session, string Provider) Create(ModelProto model)
    {
        var bytes = OrtModelBytes.Of(model); // once, whichever provider takes it
        // On CPU, the weights of a served model's weights file are its other sessions' too (SharedWeights).
        var shared = RunsOnCpu ? SharedWeights.Of(model) : null;
        // A Winograd race's single-node sessions are never profiled: the profiler's cost on a ~0.5 ms
        // run moved the races' outcomes, so a profiled service took other kernels than an unprofiled one.
        return Create(options => FromMemory(bytes, options, model, shared), nativeOps: true, profiled: model.Graph?.Name != WinogradRace.GraphName);
    }

    /// <summary>
    /// A CPU session of a model held in memory that only loads its graph (no optimizations, one
    /// thread): for what ONNX Runtime infers as it loads it (<see cref="InferenceSession.OutputMetadata"/>), not for serving.
    /// </summary>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime refuses the graph.</exception>
    public static InferenceSession Inspect(ModelProto model)
    {
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL,
            IntraOpNumThreads = 1,
            InterOpNumThreads = 1,
        };
        return FromMemory(OrtModelBytes.Of(model), options);
    }

    /// <summary>A session on a model's bytes, their external references read from the folder they name.</summary>
    /// <param name="shared">The weights it shares with the served model's other sessions, if any (<see cref="SharedWeights"/>).</param>
    private static InferenceSession FromMemory((byte[] Bytes, string? Folder) bytes, SessionOptions options, ModelProto? model = null, SharedWeights? shared = null)
    {
        if (bytes.Folder is not null) options.AddSessionConfigEntry(OrtModelBytes.ExternalDataFolder, bytes.Folder);
        return shared?.Open(model!, bytes.Bytes, options) ?? new InferenceSession(bytes.Bytes, options);
    }

    private (InferenceSession Session, string Provider) Create(Func<SessionOptions, InferenceSession> open, bool nativeOps, bool profiled,
        GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        if (PreferredProvider.Provider == Cuda)
        {
            try
            {
                using var cudaOptions = Options(cuda: true, nativeOps, profiled, level);
                return (open(cudaOptions), Cuda);
            }
            catch (OnnxRuntimeException) when (!_options.ExecutionProvider.Equals("cuda", StringComparison.OrdinalIgnoreCase))
            {
                // A model CUDA cannot place still runs on CPU; a broken model fails again below.
            }
        }
        // ONNX Runtime copies the options into the session: they are released once it is made.
        using var options = Options(cuda: false, nativeOps, profiled, level);
        return (open(options), Cpu);
    }

    private SessionOptions Options(bool cuda, bool nativeOps, bool profiled, GraphOptimizationLevel level)
    {
        var options = new SessionOptions
        {
            GraphOptimizationLevel = level,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = 1,
        };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", _options.AllowSpinning ? "1" : "0");
        options.AddSessionConfigEntry("session.force_spinning_stop", "1"); // no spinning once a run ends
        if (nativeOps) NativeOps.Register(options); // backward graphs may hold its kernels
        if (profiled && _options.ProfilePrefix is { } prefix)
        {
            options.ProfileOutputPathPrefix = prefix; // read when profiling is switched on
            options.EnableProfiling = true;
        }
        if (cuda) AppendCuda(options);
        return options;
    }

    /// <summary>
    /// The CUDA provider, its convolutions and products in float32: its default, TF32, moved
    /// guided backprop maps of resnet18 and mobilenet_v2 by 2–6% of their largest value and a
    /// summed batch of 16 gradients by 19% on an H200; in float32 one sample's map was within
    /// 1e-6 of the CPU provider's (docs/performance.md, "GPU").
    /// </summary>
    private void AppendCuda(SessionOptions options)
    {
        using var cuda = new OrtCUDAProviderOptions(); // the session options keep their own copy
        cuda.UpdateOptions(new Dictionary<string, string>
        {
            ["device_id"] = _options.CudaDeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["use_tf32"] = "0",
            ["cudnn_conv_algo_search"] = _options.CudnnConvAlgoSearch,
        });
        options.AppendExecutionProvider_CUDA(cuda);
    }

    private (bool, string) ProbeCuda()
    {
        // A missing CUDA is the normal case on CPU hosts: keep ORT from logging it as an error.
        var env = OrtEnv.Instance();
        var level = env.EnvLogLevel;
        env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
        try
        {
            using var probe = new SessionOptions();
            AppendCuda(probe);
            return (true, "CUDA provider loaded");
        }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            if (_options.ExecutionProvider.Equals("cuda", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException("Saliency:OnnxRuntime:ExecutionProvider is 'cuda' but the CUDA provider does not load: " + e.Message, e);
            return (false, "CUDA provider unavailable: " + FirstLine(e.Message));
        }
        finally
        {
            env.EnvLogLevel = level;
        }
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
