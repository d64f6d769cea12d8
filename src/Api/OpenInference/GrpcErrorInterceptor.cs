using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Security;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// The API key for inference (metadata <c>x-api-key</c>, as the header on REST), and every gRPC
/// failure as a status with the detail the one table (<see cref="Problems"/>) gives it.
/// </summary>
public sealed class GrpcErrorInterceptor(IOptions<SaliencyOptions> options, ILogger<GrpcErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            ApiKeyFilter.Check(context.RequestHeaders.GetValue(ApiKeyFilter.Header.ToLowerInvariant()), options.Value, inference: true);
            return await continuation(request, context);
        }
        catch (Exception e) when (e is not RpcException)
        {
            if (e is OperationCanceledException && context.CancellationToken.IsCancellationRequested) throw new RpcException(new Status(StatusCode.Cancelled, "Cancelled by the client."));
            if (e is OverflowException) throw new RpcException(new Status(StatusCode.InvalidArgument, "A value is out of its datatype's range."));
            var problem = Problems.Describe(e);
            if (!problem.Expected) logger.LogError(e, "Unhandled error in {Method}", context.Method);
            throw new RpcException(new Status(Code(problem.Status), problem.Detail));
        }
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
