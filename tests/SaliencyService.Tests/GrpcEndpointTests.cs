using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using SaliencyService.Api.OpenInference;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The gRPC port as configuration gives it: on at 5081 where the setting is absent (a binary run
/// from a folder without its appsettings.json), off where it is empty or not positive; a second
/// instance on the same host, whose gRPC port is taken, still starts and serves REST.
/// </summary>
public sealed class GrpcEndpointTests
{
    private static IConfiguration With(string? port) => new ConfigurationBuilder()
        .AddInMemoryCollection(port is null ? [] : [new KeyValuePair<string, string?>("Saliency:Grpc:Port", port)])
        .Build();

    [Theory]
    [InlineData(null, 5081)]
    [InlineData("6001", 6001)]
    [InlineData("", null)]
    [InlineData(" ", null)]
    [InlineData("0", null)]
    [InlineData("-1", null)]
    public void The_port_comes_from_the_setting_or_the_default(string? setting, int? expected) =>
        Assert.Equal(expected, GrpcEndpoint.Port(With(setting)));

    [Fact]
    public void A_port_that_is_not_a_number_stops_the_start() =>
        Assert.Throws<InvalidOperationException>(() => GrpcEndpoint.Port(With("grpc")));

    [Fact]
    public async Task A_service_addressed_as_the_container_image_addresses_it_starts_and_serves_both_ports()
    {
        // Both settings name one port; the URL wins, as ASP.NET Core's precedence has it. Listening on
        // both aborted the image's start ("address already in use").
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var service = await ServiceProcess.StartAsync(store, likeTheImage: true);
            Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/v2/health/ready")).StatusCode);
            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(service.GrpcAddress);
            var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
            Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
            Assert.DoesNotContain("Overriding", service.Output);
        }
        finally
        {
            ServiceFactory.DeleteServiceFolder(store);
        }
    }

    [Fact]
    public async Task A_grpc_port_taken_after_the_service_found_it_free_is_given_up_not_fatal()
    {
        // A service on localhost finds the port free on IPv4's loopback, then Kestrel binds both
        // loopbacks: IPv6's is taken, as when a second instance starts at the same moment and binds
        // first. The service starts again without gRPC, where it exited ("address already in use").
        using var taken = new TcpListener(IPAddress.IPv6Loopback, 0);
        taken.Server.DualMode = false;
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var service = await ServiceProcess.StartAsync(store, new Dictionary<string, string> { ["Saliency__Grpc__Port"] = port.ToString() }, localhost: true);
            Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/v2/health/ready")).StatusCode);
            Assert.Contains($"The gRPC port {port} is in use", service.Output);
            Assert.False(service.HasExited);
        }
        finally
        {
            ServiceFactory.DeleteServiceFolder(store);
        }
    }

    [Fact]
    public async Task A_service_whose_grpc_port_is_taken_starts_without_grpc_and_says_so()
    {
        using var taken = new TcpListener(IPAddress.IPv6Any, 0) { Server = { DualMode = true } };
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var store = ServiceFactory.NewStoreDirectory();
        try
        {
            using var service = await ServiceProcess.StartAsync(store, new Dictionary<string, string> { ["Saliency__Grpc__Port"] = port.ToString() });
            Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/v2/health/ready")).StatusCode);
            Assert.Contains($"The gRPC port {port} is in use", service.Output);
            Assert.False(service.HasExited);
        }
        finally
        {
            ServiceFactory.DeleteServiceFolder(store);
        }
    }
}
