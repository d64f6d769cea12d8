using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Errors;
using SaliencyService.Api.Inputs;
using SaliencyService.Api.Models;
using SaliencyService.Api.Observability;
using SaliencyService.Api.OpenInference;
using SaliencyService.Api.OpenInference.Grpc;
using SaliencyService.Api.Security;
using SaliencyService.Api.Swagger;
using SaliencyService.Explain.Engine;
using SaliencyService.Explain.Serving;
using SaliencyService.Api.Inference;

namespace SaliencyService.Api;

/// <summary>Everything the service registers, grouped so Program.cs stays a table of contents.</summary>
public static class ServiceRegistration
{
    public static WebApplicationBuilder AddSaliencyService(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var section = builder.Configuration.GetSection(SaliencyOptions.Section);
        services.Configure<SaliencyOptions>(section);
        var options = section.Get<SaliencyOptions>() ?? new SaliencyOptions();

        // Uploads are limited per endpoint; Kestrel's global cap is the largest of them.
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = Math.Max(options.MaxModelBytes, options.MaxRequestBodyBytes) + 1024 * 1024);
        if (ConnectionLimit.Of(options.MaxConnections) is { } connections)
        {
            // Registered after Kestrel's socket transport: Kestrel binds with the last that can.
            services.AddSingleton(sp => new ConnectionSlots(
                new SocketTransportFactory(sp.GetRequiredService<IOptions<SocketTransportOptions>>(), sp.GetRequiredService<ILoggerFactory>()), connections));
            services.AddSingleton<IConnectionListenerFactory>(sp => sp.GetRequiredService<ConnectionSlots>());
        }
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.Configure<JsonOptions>(j => j.SerializerOptions.WriteIndented = false);

        // On SIGTERM, stop accepting and let in-flight requests finish (up to the request time limit).
        services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(options.RequestTimeoutSeconds + 5));
        services.AddSingleton<IProblemDetailsWriter, V2ProblemWriter>(); // before the default writer: the first that can write does
        services.AddProblemDetails();
        services.AddExceptionHandler<ProblemExceptionHandler>();

        services.AddSingleton(sp => new OnnxSessionFactory(sp.GetRequiredService<IOptions<SaliencyOptions>>().Value.OnnxRuntime));
        services.Configure<ModelStoreOptions>(builder.Configuration.GetSection(ModelStoreOptions.Section));
        services.AddSingleton(sp => new StoreLayout(sp.GetRequiredService<IOptions<SaliencyOptions>>().Value.ModelStore,
            sp.GetRequiredService<IOptions<ModelStoreOptions>>().Value));
        services.AddSingleton(sp => new ExplainAnalysis(sp.GetRequiredService<IOptions<SaliencyOptions>>().Value.Explain, sp.GetRequiredService<OnnxSessionFactory>()));
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<SaliencyOptions>>().Value;
            return new InferenceQueues(new WorkQueue("predict", o.Predict), new WorkQueue("explain", o.Explain));
        });
        services.AddSingleton<ModelLoader>();
        services.AddSingleton<ImportWarmUp>();
        services.AddSingleton<ServiceMetrics>();
        services.AddSingleton<PredictBatchers>();
        services.AddSingleton<ExplanationCache>();
        services.AddSingleton<ServingActivity>();
        services.AddSingleton<ExplainService>();
        services.AddSingleton<OpenInferenceRunner>();
        services.AddGrpc(g =>
        {
            g.Interceptors.Add<GrpcErrorInterceptor>();
            g.MaxReceiveMessageSize = (int)Math.Min(int.MaxValue, options.MaxRequestBodyBytes);
            g.MaxSendMessageSize = null;
            g.IgnoreUnknownServices = true; // no catch-all gRPC routes over the REST ones (they would turn a 405 into a 404)
        });
        // The gRPC health protocol (grpc.health.v1), which gRPC load balancers and Kubernetes' grpc
        // probes call: the server ("") and the inference service are ready as /health/ready is,
        // "live" answers as /health/live does.
        services.AddGrpcHealthChecks(h =>
        {
            h.Services.Map("", check => check.Tags.Contains(Readiness.Tag));
            h.Services.Map(GRPCInferenceService.Descriptor.FullName, check => check.Tags.Contains(Readiness.Tag));
            h.Services.Map("live", check => check.Tags.Contains(Readiness.LiveTag));
        });
        services.AddGrpcReflection(); // grpcurl and Postman list the services and their messages
        services.AddSingleton<ModelStore>();
        services.AddSingleton<DemoModelSeeder>();
        services.AddSingleton<ModelInputReader>();
        services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, ConnectionBuffers>();
        services.AddHostedService<ModelStoreStartup>();
        // Replicas sharing the store follow it (after the start-up load above).
        services.AddHostedService<StoreSync>();

        services.AddPerClientRateLimiter(options.RateLimit);
        services.AddOptionalTracing(options.Tracing.OtlpEndpoint);
        services.AddHealthChecks()
            .AddCheck("process", () => HealthCheckResult.Healthy("answering"), tags: [Readiness.LiveTag])
            .AddCheck<StoreReadyCheck>("model-store", tags: [Readiness.Tag])
            .AddCheck<ExplainEngineCheck>("explain-engine", tags: [Readiness.Tag]);

        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(c =>
        {
            c.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "SaliencyService",
                Version = "v1",
                Description = "ONNX predictions over REST, and saliency maps that explain them.",
            });
            var xml = Path.Combine(AppContext.BaseDirectory, "SaliencyService.Api.xml");
            if (File.Exists(xml)) c.IncludeXmlComments(xml);
            c.AddSecurityDefinition("ApiKey", new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = ApiKeyFilter.Header,
                Description = "Needed for POST/DELETE /v1/models when Saliency:ApiKey is set (and for predict/explain with ApiKeyForInference).",
            });
            c.AddSecurityRequirement(document => new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("ApiKey", document)] = [] });
            c.OperationFilter<MultipartFormFilter>();
            c.OperationFilter<BinaryResponseFilter>();
            c.OperationFilter<ClosedParameterSetsFilter>();
        });
        return builder;
    }
}
