using SaliencyService.Api.Errors;
using SaliencyService.Explain;

namespace SaliencyService.Api.Inference;

/// <summary>
/// A per-request time limit: a token that fires when the client goes away or the limit passes.
/// ONNX Runtime runs are terminated through RunOptions and the mirror stops between nodes.
/// </summary>
public sealed class RequestDeadline : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly TimeSpan _limit;
    private readonly CancellationToken _client;

    public RequestDeadline(CancellationToken client, TimeSpan limit)
    {
        _client = client;
        _limit = limit;
        _source = CancellationTokenSource.CreateLinkedTokenSource(client);
        _source.CancelAfter(limit);
    }

    public CancellationToken Token => _source.Token;

    /// <summary>Runs <paramref name="work"/>, turning an expired limit into a 503 problem.</summary>
    public async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> work)
    {
        try
        {
            return await work(Token);
        }
        catch (OperationCanceledException) when (!_client.IsCancellationRequested)
        {
            throw ProblemException.Busy($"The request took longer than its {_limit.TotalSeconds:0} s limit and was stopped.", retryAfterSeconds: 10);
        }
    }

    public void Dispose() => _source.Dispose();
}
