namespace SaliencyService.Tests.Support;

/// <summary>A service with every reference fixture model imported under its folder name.</summary>
public sealed class FixtureModelsService : Xunit.IAsyncLifetime
{
    public ServiceFactory Factory { get; } = new();
    public HttpClient Client { get; private set; } = null!;

    public static readonly string[] Models = ["seed_cnn", "mini_resnet", "mini_mobilenet"];

    public async Task InitializeAsync()
    {
        Client = Factory.CreateClient();
        foreach (var model in Models) await Http.ImportFixtureAsync(Client, model);
    }

    public Task DisposeAsync()
    {
        Client.Dispose();
        Factory.Dispose();
        return Task.CompletedTask;
    }
}
