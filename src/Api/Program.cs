using SaliencyService.Api;
using SaliencyService.Api.Apis;
using SaliencyService.Api.Observability;

var builder = WebApplication.CreateBuilder(args);
if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"]))
    builder.WebHost.UseUrls("http://localhost:5080"); // the contract's default address
builder.AddSaliencyService();

var app = builder.Build();
app.UseMiddleware<MetricsMiddleware>(); // outermost: sees the final status of every request
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseSwagger();
app.UseSwaggerUI();
app.UseRateLimiter();

app.MapOperations();
app.MapModels();
app.MapInference();

app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
