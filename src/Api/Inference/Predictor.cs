using SaliencyService.Api.Errors;
using SaliencyService.Api.Models;
using SaliencyService.Contracts;
using SaliencyService.Explain;
using SaliencyService.Explain.Serving;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.Inference;

/// <summary>Runs a batch through ONNX Runtime and ranks each sample's scores.</summary>
public static class Predictor
{
    public const int MaxTopK = 1000;

    public static void CheckTopK(int topK)
    {
        if (topK is < 1 or > MaxTopK) throw ProblemException.BadRequest($"topK must be between 1 and {MaxTopK}.");
    }

    /// <summary>Runs a batch (first dimension) through ONNX Runtime: the scored output of each sample.</summary>
    public static float[][] Scores(ServedModel model, FloatTensor batch, CancellationToken cancellationToken = default)
    {
        var descriptor = model.Descriptor;
        var output = ScoredOutput(descriptor);
        var total = (int)batch.Shape[0];
        var scores = new float[total][];
        foreach (var (start, count) in Chunks(descriptor, total))
        {
            var result = model.Onnx.Run(descriptor.Preprocessing.Input, Slice(batch, start, count), output.Name, cancellationToken);
            PerSample(result.Data, count, output.Name).CopyTo(scores, start);
        }
        return scores;
    }

    /// <summary>The scored output of a model run through its batcher, split per sample.</summary>
    public static async Task<float[][]> ScoresAsync(PredictBatcher batcher, ServedModel model, FloatTensor batch, CancellationToken cancellationToken)
    {
        var output = ScoredOutput(model.Descriptor);
        var input = model.Onnx.Input(model.Preprocessing.Input, batch);
        var result = (await batcher.RunAsync(new InferWork([input], [output.Name]), cancellationToken))[0];
        return PerSample(FloatElements.Of(result), (int)batch.Shape[0], output.Name);
    }

    /// <summary>Each sample's part of an output, checked to be finite.</summary>
    private static float[][] PerSample(float[] data, int count, string name)
    {
        if (data.Length % count != 0)
            throw ProblemException.Unprocessable($"Output '{name}' has {data.Length} values for {count} input(s).");
        NonFinite.Check(data, $"output '{name}'");
        var perSample = data.Length / count;
        return count == 1 ? [data] : Enumerable.Range(0, count).Select(i => data.AsSpan(i * perSample, perSample).ToArray()).ToArray();
    }

    /// <summary>The top-k of each sample's scores.</summary>
    public static PredictResponse Rank(ModelDescriptor model, IEnumerable<float[]> scores, int topK) =>
        new(model.Name, scores.Select(s => new Prediction(Top(s, topK, model.Labels))).ToList());

    /// <summary>The output that is ranked (<see cref="Preprocessing.Output"/>: the manifest's, or the default) of a single-input model.</summary>
    public static TensorDescriptor ScoredOutput(ModelDescriptor model)
    {
        if (model.Inputs.Count != 1)
            throw ProblemException.Unprocessable($"The model has {model.Inputs.Count} inputs; predict feeds models with one input.");
        return model.Outputs.FirstOrDefault(o => o.Name == model.Preprocessing.Output)
               ?? throw ProblemException.Unprocessable("The model has no real-valued output to rank.");
    }

    /// <summary>
    /// A dynamic batch dimension takes the whole batch in one run; a fixed one of B takes B at a time.
    /// </summary>
    private static IEnumerable<(int Start, int Count)> Chunks(ModelDescriptor model, int total)
    {
        var batch = model.Inputs[0].Shape[0];
        var size = batch > 0 ? (int)batch : total;
        if (total % size != 0)
            throw ProblemException.BadRequest($"The model takes batches of exactly {size}; {total} input(s) were sent.");
        for (var start = 0; start < total; start += size) yield return (start, size);
    }

    private static FloatTensor Slice(FloatTensor batch, int start, int count)
    {
        if (start == 0 && count == batch.Shape[0]) return batch;
        var length = batch.Data.Length / (int)batch.Shape[0];
        return new FloatTensor(batch.Data.AsSpan(start * length, count * length).ToArray(), [count, .. batch.Shape[1..]]);
    }

    /// <summary>The k highest scores, highest first, with labels where the manifest has them.</summary>
    public static ClassScore[] Top(ReadOnlySpan<float> scores, int k, IReadOnlyList<string>? labels)
    {
        // One pass keeping the best k in order (highest first; NaN as −∞; ties keep the lower index
        // first): sorting all of an ImageNet model's 1,000 scores took half a millisecond a request.
        var best = new List<int>(Math.Min(k, scores.Length) + 1);
        for (var i = 0; i < scores.Length; i++)
        {
            var key = Key(scores[i]);
            if (best.Count == k && key <= Key(scores[best[^1]])) continue; // (an equal score's index is higher: it comes after)
            var at = best.Count;
            while (at > 0 && key > Key(scores[best[at - 1]])) at--;
            best.Insert(at, i);
            if (best.Count > k) best.RemoveAt(k);
        }
        var result = new ClassScore[best.Count];
        for (var r = 0; r < best.Count; r++)
            result[r] = new ClassScore(best[r], labels is not null && best[r] < labels.Count ? labels[best[r]] : null, scores[best[r]]);
        return result;
    }

    private static float Key(float score) => float.IsNaN(score) ? float.NegativeInfinity : score;
}
