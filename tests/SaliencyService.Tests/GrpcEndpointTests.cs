using Microsoft.Extensions.Configuration;
using SaliencyService.Api.OpenInference;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The gRPC port as configuration gives it: on at 5081 where the setting is absent (a binary run
/// from a folder without its appsettings.json), off where it is empty or not positive.
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
}
