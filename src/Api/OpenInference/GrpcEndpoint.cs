using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.OpenInference.Grpc;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// gRPC's own cleartext HTTP/2 (h2c) port beside the REST addresses (<see cref="Port"/>): one more
/// URL, the only one whose endpoint speaks HTTP/2 (cleartext HTTP/2 is prior knowledge only, so the
/// REST ports keep HTTP/1.1). URLs rather than explicit endpoints: Kestrel takes one or the other,
/// and warned at every start that it overrode the URLs.
/// </summary>
public static class GrpcEndpoint
{
    /// <summary>
    /// <c>Saliency:Grpc:Port</c> as <see cref="GrpcOptions"/> binds it (its default where the setting
    /// is absent, so the port does not depend on whether <c>appsettings.json</c> lies in the working
    /// directory, the content root); null (off) where it is empty or not positive. Read before the
    /// service's options exist: Kestrel's endpoints are set while the host is built.
    /// </summary>
    /// <exception cref="InvalidOperationException">The setting is not a number.</exception>
    public static int? Port(IConfiguration configuration)
    {
        var section = configuration.GetSection(SaliencyOptions.Section).GetSection(nameof(SaliencyOptions.Grpc));
        if (section[nameof(GrpcOptions.Port)] is { } value && value.Trim().Length == 0) return null; // set empty: off
        return (section.Get<GrpcOptions>() ?? new GrpcOptions()).Port is { } port && port > 0 ? port : null;
    }

    /// <param name="free">
    /// False where the port was found free but taken before Kestrel bound it (<see cref="Lost"/>):
    /// this start goes without it.
    /// </param>
    public static void Listen(WebApplicationBuilder builder, bool free = true)
    {
        if (Port(builder.Configuration) is not { } port) return;
        // ASP.NET Core's precedence: URLs, else HTTP ports (the .NET container images set
        // ASPNETCORE_HTTP_PORTS=8080; this service's image sets ASPNETCORE_URLS as well).
        var urls = Split(builder.Configuration["urls"]);
        if (urls.Length == 0) urls = Split(builder.Configuration["http_ports"]).Select(p => $"http://*:{p}").ToArray();
        var addresses = urls.Select(BindingAddress.Parse).ToArray();
        if (addresses.Any(a => a.Scheme == "https"))
            throw new InvalidOperationException("Saliency:Grpc:Port serves h2c beside plain HTTP; terminate TLS at the gateway, not with https:// URLs.");
        var local = addresses.Length > 0 && addresses.All(a => a.Host == "localhost");
        // A second instance on the same host serves REST (and /v2 over it) instead of failing to start.
        var taken = !free || InUse(port, local);
        builder.WebHost.UseUrls(taken ? urls : [..urls, $"http://{(local ? "localhost" : "*")}:{port}"]);
        builder.WebHost.UseSetting(WebHostDefaults.HttpPortsKey, ""); // now among the URLs
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = !taken && endpoint.IPEndPoint?.Port == port ? HttpProtocols.Http2 : HttpProtocols.Http1);
            if (taken)
                kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GrpcEndpoint))
                    .LogWarning("The gRPC port {Port} is in use by another process: gRPC is off in this one (set Saliency:Grpc:Port to a free port, or 0).", port);
        });
    }

    /// <summary>
    /// Whether a start failed because Kestrel could not bind the gRPC port: another process took it
    /// after <see cref="Listen"/> found it free (two instances started at once on one host), so the
    /// service starts again without it. Any other address failing still stops the start.
    /// </summary>
    public static bool Lost(IConfiguration configuration, IOException e) =>
        Port(configuration) is { } port && e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException
        && e.Message.Contains($":{port}:", StringComparison.Ordinal);

    private static string[] Split(string? list) =>
        (list ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Whether another socket listens on the port where gRPC would (probed by binding it for a moment).</summary>
    private static bool InUse(int port, bool local)
    {
        try
        {
            using var socket = local
                ? new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                : new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
            socket.Bind(new IPEndPoint(local ? IPAddress.Loopback : IPAddress.IPv6Any, port));
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse)
        {
            return true;
        }
        catch (SocketException)
        {
            return false; // no IPv6 here, say: Kestrel binds as it can and reports what it cannot
        }
    }

    /// <summary>
    /// The gRPC services (inference, health, reflection). Not bound to the port's number in the
    /// request's authority: behind a gateway, a port-forward or a container's published port, the
    /// client names another. Only the gRPC port speaks HTTP/2, which gRPC needs; the REST ports
    /// answer a gRPC call with 426.
    /// </summary>
    public static void Map(WebApplication app)
    {
        if (Port(app.Configuration) is null) return;
        app.MapGrpcService<OpenInferenceGrpcService>();
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
    }
}
