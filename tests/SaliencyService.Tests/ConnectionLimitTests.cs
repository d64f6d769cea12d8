using System.Net;
using System.Net.Sockets;
using System.Text;
using SaliencyService.Contracts;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// Each connection takes a file descriptor. A service under a low open-file limit, flooded with
/// more connections than the limit leaves, used to run out (here it held 799 of its 800 with ~300
/// of its own open); a process out of them fails what comes next, and .NET may end it
/// ("Out of memory.": it did under 300 at a limit of 420). Now it accepts connections only while
/// a slot below the limit is free (<see cref="Api.Configuration.ConnectionSlots"/>); the rest wait
/// in the listen backlog, and it serves on.
/// </summary>
public sealed class ConnectionLimitTests : IDisposable
{
    private const int OpenFiles = 800;
    // More than the ~500 descriptors the service leaves, fewer than its ~80 connections and the
    // listen backlog (512) hold, so that every connect completes (past them the kernel drops SYNs).
    private const int Flood = 560;
    private const int Spare = 64; // descriptors the service must still have at the flood's height (capped: ~400 held here)
    private readonly string _store = ServiceFactory.NewStoreDirectory();

    public void Dispose() => ServiceFactory.DeleteServiceFolder(_store);

    [Fact]
    public async Task A_flood_of_connections_past_the_open_file_limit_leaves_the_service_serving()
    {
        // The rate limit off: the flood's requests would spend the bucket the last prediction needs.
        using var service = await ServiceProcess.StartAsync(_store, new Dictionary<string, string> { ["Saliency__RateLimit__PermitsPerSecond"] = "0" },
            launcher: Launchers.OpenFiles(OpenFiles));
        Assert.False(service.HasExited, service.Output);
        await Http.ImportFixtureAsync(service.Client, "seed_cnn", "seed");

        // Every connection asks for the model's descriptor and stays open.
        var body = Encoding.ASCII.GetBytes("GET /v1/models/seed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        var connections = new List<TcpClient>();
        var most = 0;
        try
        {
            var flood = Task.WhenAll(Enumerable.Range(0, Flood).Select(async _ =>
            {
                var client = new TcpClient();
                lock (connections) connections.Add(client);
                try
                {
                    using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await client.ConnectAsync(IPAddress.Loopback, service.Client.BaseAddress!.Port, patience.Token);
                    await client.GetStream().WriteAsync(body);
                }
                catch (Exception e) when (e is SocketException or IOException or OperationCanceledException) { } // closed, or still waiting
            }));
            while (!flood.IsCompleted)
            {
                most = Math.Max(most, service.OpenDescriptors);
                await Task.Delay(20);
            }
            await flood;
            for (var i = 0; i < 25; i++, await Task.Delay(40)) most = Math.Max(most, service.OpenDescriptors);
        }
        finally
        {
            foreach (var client in connections) client.Dispose();
        }

        Assert.False(service.HasExited, service.Output);
        Assert.True(most <= OpenFiles - Spare, $"the service held {most} descriptors of its {OpenFiles}");
        using var form = Http.ImageForm(TestPaths.Fixture("seed_cnn", "input0.png"));
        var prediction = await Http.ReadAsync<PredictResponse>(await service.Client.PostAsync("/v1/models/seed/predict", form));
        Assert.NotEmpty(prediction.Predictions);
        Assert.Equal(HttpStatusCode.OK, (await service.Client.GetAsync("/health/ready")).StatusCode);
    }
}
