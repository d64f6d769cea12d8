using SaliencyService.Api;
using SaliencyService.Api.Apis;
using SaliencyService.Api.Observability;
using SaliencyService.Api.OpenInference;
using SaliencyService.Explain.Isolation;

// Before the threads that allocate start (this process's and its children's, which start here too).
SaliencyService.Explain.Torch.NativeHeap.LimitArenas();

// Work that may crash a native library runs in a child process of this same binary.
ChildProcess.EntryAssembly = typeof(Program).Assembly.Location;
ChildCommands.WarmUpModel = Path.Combine(SaliencyService.Api.Models.DemoModelSeeder.DemoDirectory, "seed-cnn");
if (ChildCommands.TryRun(args, out var childExitCode)) return childExitCode;

var app = Build(args, grpc: true);
try
{
    await app.StartAsync();
}
catch (IOException e) when (GrpcEndpoint.Lost(app.Configuration, e))
{
    // Another instance on this host took the gRPC port after this one found it free.
    await app.DisposeAsync();
    app = Build(args, grpc: false);
    await app.StartAsync();
}
await app.WaitForShutdownAsync();
await app.DisposeAsync();
return 0;

// The service; with grpc false, without its gRPC port (taken by another process).
static WebApplication Build(string[] args, bool grpc)
{
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = ContentRoot(args) });
    if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"]))
        builder.WebHost.UseUrls("http://localhost:5080"); // the contract's default address
    builder.AddSaliencyService();
    GrpcEndpoint.Listen(builder, grpc);

    var app = builder.Build();
    app.UseMiddleware<MetricsMiddleware>(); // outermost: sees the final status of every request
    app.Use((context, next) => ServerTiming.TrackAsync(context, () => next(context)));
    var serving = app.Services.GetRequiredService<ServingActivity>();
    app.Use((context, next) => serving.TrackAsync(context, () => next(context)));
    app.UseExceptionHandler();
    app.UseStatusCodePages();
    app.UseSwagger();
    app.UseSwaggerUI();
    app.UsePage();
    app.UseRateLimiter();

    app.MapOperations();
    app.MapModels();
    app.MapInference();
    app.MapExplain();
    app.MapMethods();
    app.MapOpenInference();
    GrpcEndpoint.Map(app);
    return app;
}

// The settings (appsettings.json) ship beside the binary, and ASP.NET Core reads them from the
// content root, by default the current directory: a service started elsewhere (`dotnet
// path/to/SaliencyService.Api.dll`) ran on code defaults, logging every request. Then the binary's
// folder is the content root, unless one was given.
static string? ContentRoot(string[] args) =>
    File.Exists("appsettings.json")
    || args.Any(a => a.Contains("contentRoot", StringComparison.OrdinalIgnoreCase))
    || Environment.GetEnvironmentVariable("ASPNETCORE_CONTENTROOT") is not null
    || Environment.GetEnvironmentVariable("DOTNET_CONTENTROOT") is not null
        ? null
        : AppContext.BaseDirectory;

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
