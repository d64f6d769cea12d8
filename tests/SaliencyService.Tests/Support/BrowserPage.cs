using Microsoft.Playwright;

namespace SaliencyService.Tests.Support;

/// <summary>
/// The service as a real process (demo models seeded) and Debian's Chromium driven by Playwright
/// through <c>ExecutablePath</c>: no browser is downloaded. Screenshots go to
/// <see cref="Screenshots"/> (the test run's artifacts).
/// </summary>
public sealed class BrowserPage : Xunit.IAsyncLifetime
{
    /// <summary>Where Debian's chromium package puts the browser (.ci/run installs it).</summary>
    public const string Chromium = "/usr/bin/chromium";

    private readonly string _store = ServiceFactory.NewStoreDirectory();
    private IPlaywright? _playwright;

    public ServiceProcess Service { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    public static string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"{Chromium} is missing: apt-get install chromium (.ci/run does).");
        Directory.CreateDirectory(Screenshots);
        Service = await ServiceProcess.StartAsync(_store, new Dictionary<string, string> { ["Saliency__SeedDemoModels"] = "true" });
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox"], // CI runs as root
        });
    }

    /// <summary>A fresh page on the service, collecting console errors and failed requests into <paramref name="errors"/>.</summary>
    public async Task<IPage> OpenAsync(List<string> errors, int width = 1280, int height = 1000)
    {
        var page = await Browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
        page.Console += (_, message) => { if (message.Type == "error") errors.Add(message.Text); };
        page.PageError += (_, error) => errors.Add(error);
        await page.GotoAsync(Service.Client.BaseAddress!.ToString());
        await page.WaitForFunctionAsync("document.querySelectorAll('[data-testid=model] option').length > 0");
        return page;
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        Service?.Dispose();
        ServiceFactory.DeleteServiceFolder(_store);
    }
}
