using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.RateLimiting;
using SaliencyService.Api.Configuration;

namespace SaliencyService.Api.Security;

/// <summary>
/// A token bucket per client (its API key when it sends one, else its address) on the APIs: 429
/// with Retry-After when a client outruns it (problem+json on /v1, the protocol's error on /v2).
/// </summary>
public static class RateLimiting
{
    public const string Policy = "per-client";

    public static IServiceCollection AddPerClientRateLimiter(this IServiceCollection services, RateLimitOptions limits)
    {
        services.AddRateLimiter(options =>
        {
            options.AddPolicy(Policy, context =>
            {
                if (limits.PermitsPerSecond <= 0) return RateLimitPartition.GetNoLimiter("off");
                var client = context.Request.Headers[ApiKeyFilter.Header].FirstOrDefault() is { Length: > 0 } key
                    ? "key:" + key
                    : "ip:" + context.Connection.RemoteIpAddress;
                return RateLimitPartition.GetTokenBucketLimiter(client, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = Math.Max(1, limits.Burst),
                    TokensPerPeriod = limits.PermitsPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            options.OnRejected = async (context, cancellationToken) =>
            {
                var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                var response = context.HttpContext.Response;
                response.StatusCode = StatusCodes.Status429TooManyRequests;
                response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
                var problems = context.HttpContext.RequestServices.GetRequiredService<IProblemDetailsService>();
                await problems.WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = context.HttpContext,
                    ProblemDetails = new ProblemDetails { Status = 429, Title = "Too many requests", Detail = $"Rate limit exceeded; retry in {retry} s." },
                });
            };
        });
        return services;
    }
}
