using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Security;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// The API key (metadata <c>x-api-key</c>, as the header on REST) on the calls REST guards (health,
/// reflection, metadata and readiness stay open, for gRPC probes and load balancers), and every
/// gRPC failure as a status with the detail the one table (<see cref="Problems"/>) gives it.
/// </summary>
public sealed class GrpcErrorInterceptor(IOptions<SaliencyOptions> options, ILogger<GrpcErrorInterceptor> logger) : Interceptor
{
    /// <summary>
    /// The calls the key guards, as on REST: those that run a model (with the inference key) and those
    /// that change what is served (with the key whenever one is set). Metadata, readiness and
    /// statistics stay open, as on <c>/v2</c>.
    /// </summary>
    private static readonly Dictionary<string, bool> Guarded = new Dictionary<string, bool>
    {
        ["ModelInfer"] = true, ["ModelStreamInfer"] = true, ["RepositoryModelLoad"] = false, ["RepositoryModelUnload"] = false,
    }.ToDictionary(p => $"/{Grpc.GRPCInferenceService.Descriptor.FullName}/{p.Key}", p => p.Value, StringComparer.Ordinal);

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            CheckKey(context);
            return await continuation(request, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw new RpcException(StatusOf(e, context, logger));
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            CheckKey(context);
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            throw new RpcException(StatusOf(e, context, logger));
        }
    }

    private void CheckKey(ServerCallContext context)
    {
        if (Guarded.TryGetValue(context.Method, out var inference))
            ApiKeyFilter.Check(context.RequestHeaders.GetValue(ApiKeyFilter.Header.ToLowerInvariant()), options.Value, inference);
    }

    /// <summary>The status a failure answers, its detail from the one table; an unexpected one is logged.</summary>
    public static Status StatusOf(Exception e, ServerCallContext context, ILogger logger)
    {
        // The client cancelled, or reset a stream it was still sending on: nothing failed here.
        if (e is OperationCanceledException or IOException && context.CancellationToken.IsCancellationRequested) return new Status(StatusCode.Cancelled, "Cancelled by the client.");
        if (e is OverflowException) return new Status(StatusCode.InvalidArgument, "A value is out of its datatype's range.");
        var problem = Problems.Describe(e);
        if (!problem.Expected) logger.LogError(e, "Unhandled error in {Method}", context.Method);
        return new Status(Code(problem.Status), problem.Detail);
    }

    /// <summary>The gRPC code of an HTTP status from <see cref="Problems"/>' table.</summary>
    public static StatusCode Code(int status) => status switch
    {
        400 => StatusCode.InvalidArgument,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.NotFound,
        409 => StatusCode.AlreadyExists,
        413 or 507 => StatusCode.ResourceExhausted, // gRPC's code for a full file system too
        415 or 422 => StatusCode.FailedPrecondition,
        429 or 503 => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };
}
