namespace SaliencyService.Api.Models;

/// <summary>How the model store is served (configuration section <c>Saliency:ModelStore</c>, beside its path).</summary>
public sealed class ModelStoreOptions
{
    public const string Section = "Saliency:ModelStore";

    /// <summary>
    /// Seconds between two looks at the store for other replicas' imports, replaces and deletes;
    /// 0 turns following off. Polling, since network file systems deliver no change events.
    /// </summary>
    public double PollSeconds { get; set; } = 2;

    /// <summary>
    /// Serve the store as given and never write to it (KServe's <c>/mnt/models</c>): no recovery,
    /// no demo seeding, imports and deletes refused with 403. Its models are untrusted, so each is
    /// checked in a child process at start-up. The store may be a folder of models, or one bare
    /// <c>model.onnx</c> (with an optional <c>model.json</c>) served as <see cref="ModelName"/>.
    /// A store on a file system mounted read-only is served so without it.
    /// </summary>
    public bool ReadOnly { get; set; }

    /// <summary>The name a bare <c>model.onnx</c> at the store's root is served under (KServe passes the InferenceService's name).</summary>
    public string ModelName { get; set; } = DefaultModelName;

    public const string DefaultModelName = "model";
}
