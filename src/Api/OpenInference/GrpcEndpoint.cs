using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.OpenInference.Grpc;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// gRPC's own cleartext HTTP/2 (h2c) port beside the REST addresses (<see cref="Port"/>). Kestrel
/// takes explicit endpoints or URLs, not both, so with a gRPC port the REST URLs are listened on
/// explicitly too.
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

    public static void Listen(WebApplicationBuilder builder)
    {
        if (Port(builder.Configuration) is not { } port) return;
        var urls = (builder.Configuration["urls"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(BindingAddress.Parse).ToArray();
        var ports = (builder.Configuration["http_ports"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (urls.Any(u => u.Scheme == "https"))
            throw new InvalidOperationException("Saliency:Grpc:Port serves h2c beside plain HTTP; terminate TLS at the gateway, not with https:// URLs.");
        builder.WebHost.UseUrls(); // the URLs are listened on below
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var url in urls) Listen(kestrel, url.Host, url.Port, HttpProtocols.Http1);
            foreach (var http in ports) kestrel.ListenAnyIP(int.Parse(http));
            var local = urls.Length > 0 && urls.All(u => u.Host == "localhost");
            if (InUse(port, local))
            {
                // A second instance on the same host: it serves REST (and /v2 over it) instead of failing to start.
                kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GrpcEndpoint))
                    .LogWarning("The gRPC port {Port} is in use by another process: gRPC is off in this one (set Saliency:Grpc:Port to a free port, or 0).", port);
                return;
            }
            Listen(kestrel, local ? "localhost" : "*", port, HttpProtocols.Http2);
        });
    }

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

    private static void Listen(KestrelServerOptions kestrel, string host, int port, HttpProtocols protocols)
    {
        Action<ListenOptions> configure = o => o.Protocols = protocols;
        if (host == "localhost") kestrel.ListenLocalhost(port, configure);
        else if (IPAddress.TryParse(host.Trim('[', ']'), out var address) && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any))
            kestrel.Listen(address, port, configure);
        else kestrel.ListenAnyIP(port, configure); // +, *, 0.0.0.0, [::] or a host name
    }
}
