using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Security;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// The API key for inference (metadata <c>x-api-key</c>, as the header on REST) on the calls that run
/// a model (health, reflection, metadata and readiness stay open, as on REST, for gRPC probes and
/// load balancers), and every gRPC failure as a status with the detail the one table
/// (<see cref="Problems"/>) gives it.
/// </summary>
public sealed class GrpcErrorInterceptor(IOptions<SaliencyOptions> options, ILogger<GrpcErrorInterceptor> logger) : Interceptor
{
    /// <summary>The calls that run a model, as REST's infer and explain: metadata, readiness and statistics stay open there too.</summary>
    private static readonly HashSet<string> GuardedMethods =
        new[] { "ModelInfer", "ModelStreamInfer" }.Select(m => $"/{Grpc.GRPCInferenceService.Descriptor.FullName}/{m}").ToHashSet(StringComparer.Ordinal);

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
        if (GuardedMethods.Contains(context.Method))
            ApiKeyFilter.Check(context.RequestHeaders.GetValue(ApiKeyFilter.Header.ToLowerInvariant()), options.Value, inference: true);
    }

    /// <summary>The status a failure answers, its detail from the one table; an unexpected one is logged.</summary>
    public static Status StatusOf(Exception e, ServerCallContext context, ILogger logger)
    {
        if (e is OperationCanceledException && context.CancellationToken.IsCancellationRequested) return new Status(StatusCode.Cancelled, "Cancelled by the client.");
        if (e is OverflowException) return new Status(StatusCode.InvalidArgument, "A value is out of its datatype's range.");
        var problem = Problems.Describe(e);
        if (!problem.Expected) logger.LogError(e, "Unhandled error in {Method}", context.Method);
        return new Status(Code(problem.Status), problem.Detail);
    }

    private static StatusCode Code(int status) => status switch
    {
        400 => StatusCode.InvalidArgument,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.NotFound,
        409 => StatusCode.AlreadyExists,
        413 => StatusCode.ResourceExhausted,
        415 or 422 => StatusCode.FailedPrecondition,
        429 or 503 => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };
}
