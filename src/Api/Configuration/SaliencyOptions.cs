using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Serving;

namespace SaliencyService.Api.Configuration;

/// <summary>The <c>Saliency</c> configuration section (env: <c>Saliency__Name</c>).</summary>
public sealed class SaliencyOptions
{
    public const string Section = "Saliency";

    /// <summary>Model repository directory, relative to the working directory unless rooted.</summary>
    public string ModelStore { get; set; } = "data/models";

    /// <summary>Seed an empty store with the demo models shipped beside the service.</summary>
    public bool SeedDemoModels { get; set; } = true;

    /// <summary>Largest image accepted, in pixels (checked before decoding).</summary>
    public long MaxImagePixels { get; set; } = 40_000_000;

    /// <summary>Largest predict/explain request body, in bytes.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Largest model upload, in bytes.</summary>
    public long MaxModelBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>Largest <c>.npy</c> tensor accepted, in elements.</summary>
    public long MaxTensorElements { get; set; } = 64L * 1024 * 1024;

    /// <summary>Most <c>image</c> parts in one predict request.</summary>
    public int MaxBatchImages { get; set; } = 64;

    /// <summary>
    /// Most client connections open at once (HTTP and gRPC together); more wait in the listen
    /// backlog (<see cref="ConnectionSlots"/>). Unset: from the open-file limit (<see cref="ConnectionLimit"/>); 0: no cap.
    /// </summary>
    public long? MaxConnections { get; set; }

    /// <summary>Longest a predict or explain request may run; past it the work is stopped (503).</summary>
    public int RequestTimeoutSeconds { get; set; } = 120;

    /// <summary>When set, model management needs this key in the X-Api-Key header.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Require the API key for predict and explain too.</summary>
    public bool ApiKeyForInference { get; set; }

    public PredictOptions Predict { get; set; } = new() { MaxConcurrent = Math.Max(2, Environment.ProcessorCount * 2), MaxQueued = 64 };

    public RateLimitOptions RateLimit { get; set; } = new();

    public TracingOptions Tracing { get; set; } = new();

    public GrpcOptions Grpc { get; set; } = new();

    public OnnxRuntimeOptions OnnxRuntime { get; set; } = new();

    public ExplainServiceOptions Explain { get; set; } = new();
}

/// <summary>A bounded work queue: running at once, waiting at most, and how long one may wait.</summary>
public interface IQueueOptions
{
    /// <summary>Requests served at once; the rest wait in line.</summary>
    int MaxConcurrent { get; }

    /// <summary>Requests that may wait for a slot; beyond that, 503 + Retry-After at once.</summary>
    int MaxQueued { get; }

    /// <summary>How long a request may wait for a slot before it gets 503 + Retry-After.</summary>
    int QueueTimeoutSeconds { get; }
}

/// <summary>The explain engine's settings, and the service's around it: the explain queue and the map cache.</summary>
public sealed class ExplainServiceOptions : ExplainOptions, IQueueOptions
{
    public int MaxConcurrent { get; set; } = 2;
    public int MaxQueued { get; set; } = 16;
    public int QueueTimeoutSeconds { get; set; } = 30;

    /// <summary>Memory for recently computed maps (LRU); 0 turns the cache off.</summary>
    public int CacheMegabytes { get; set; } = 256;
}

/// <summary>
/// The predict queue, and dynamic batching (like Triton's dynamic batcher) for models whose
/// batch dimension is dynamic: predictions that wait for the model at the same time run as one batch.
/// </summary>
public sealed class PredictOptions : IQueueOptions
{
    public int MaxConcurrent { get; set; } = 2;
    public int MaxQueued { get; set; } = 16;
    public int QueueTimeoutSeconds { get; set; } = 30;

    /// <summary>Most samples in one batched run; 1 turns dynamic batching off.</summary>
    public int MaxBatchSize { get; set; } = 16;

    /// <summary>How long a batch waits for more requests before it runs; 0 runs at once with whatever is waiting.</summary>
    public int MaxQueueDelayMilliseconds { get; set; }
}

/// <summary>Per-client token bucket (client = API key, else remote address); 0 turns it off.</summary>
public sealed class RateLimitOptions
{
    public int PermitsPerSecond { get; set; } = 50;
    public int Burst { get; set; } = 100;
}

/// <summary>The Open Inference Protocol over gRPC, on its own h2c port (<see cref="OpenInference.GrpcEndpoint.Port"/>).</summary>
public sealed class GrpcOptions
{
    /// <summary>5081 where the setting is absent, as Triton's gRPC port is on by default; empty or not positive: off.</summary>
    public int? Port { get; set; } = 5081;
}

/// <summary>OpenTelemetry tracing; off while no OTLP endpoint is set.</summary>
public sealed class TracingOptions
{
    public string? OtlpEndpoint { get; set; }
}
