using Microsoft.Playwright;
using SaliencyService.Tests.Support;
using Xunit;

namespace SaliencyService.Tests;

/// <summary>
/// The web page at /, in a real Chromium against the real service, through its stable hooks
/// (data-testid): load it, explain a photo, compare every method, explain a clicked class, see a
/// bad upload's alert, and never a console error.
/// </summary>
public sealed class WebPageTests(BrowserPage browser) : IClassFixture<BrowserPage>
{
    private static string Sample(string name) => Path.Combine(TestPaths.Samples, name);

    [Fact]
    public async Task The_page_lists_the_models_and_the_eight_methods()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        var models = await page.GetByTestId("model").Locator("option").AllTextContentsAsync();
        Assert.Equal(["resnet18", "seed-cnn"], models.Order());
        var methods = await page.GetByTestId("method").Locator("option").AllTextContentsAsync();
        Assert.Equal(["guided-backprop", "gradient", "deconvnet", "input-x-gradient", "integrated-gradients", "smoothgrad", "grad-cam", "guided-grad-cam"], methods);
        await Assertions.Expect(page.Locator("#model-facts")).ToContainTextAsync("Explainable");
        Assert.Empty(errors);
    }

    [Fact]
    public async Task A_photo_is_predicted_and_explained_with_a_map()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        await page.GetByTestId("model").SelectOptionAsync("resnet18");
        await page.GetByTestId("image").SetInputFilesAsync(Sample("chelsea.png"));
        await Assertions.Expect(page.GetByTestId("predictions").Locator("button")).ToHaveCountAsync(5);

        await page.GetByTestId("method").SelectOptionAsync("guided-backprop");
        await page.GetByTestId("explain").ClickAsync();
        await WaitForImageAsync(page.GetByTestId("map"));
        await Assertions.Expect(page.Locator("#map-caption")).ToContainTextAsync("guided-backprop");
        Assert.True(await page.GetByTestId("map").EvaluateAsync<int>("img => img.naturalWidth") > 0);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserPage.Screenshots, "explain-resnet18.png"), FullPage = true });
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Comparing_shows_every_method_with_its_time()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        await page.GetByTestId("model").SelectOptionAsync("seed-cnn");
        await page.GetByTestId("image").SetInputFilesAsync(Sample("circle.png"));
        await Assertions.Expect(page.GetByTestId("predictions").Locator("button")).ToHaveCountAsync(2);
        await page.GetByTestId("compare").ClickAsync();

        var images = page.GetByTestId("gallery").Locator("img");
        await Assertions.Expect(images).ToHaveCountAsync(8, new() { Timeout = 120_000 });
        for (var i = 0; i < 8; i++) await WaitForImageAsync(images.Nth(i));
        var captions = await page.GetByTestId("gallery").Locator("figcaption").AllTextContentsAsync();
        Assert.All(captions, c => Assert.Matches(@"\d+ ms", c));
        Assert.Single(captions.Select(c => System.Text.RegularExpressions.Regex.Match(c, @"target (\d+)").Value).Distinct()); // one target for all
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserPage.Screenshots, "compare-seed-cnn.png"), FullPage = true });
        Assert.Empty(errors);
    }

    [Fact]
    public async Task Clicking_a_predicted_class_explains_that_class()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        await page.GetByTestId("model").SelectOptionAsync("seed-cnn");
        await page.GetByTestId("image").SetInputFilesAsync(Sample("square.png"));
        var classes = page.GetByTestId("predictions").Locator("button");
        await Assertions.Expect(classes).ToHaveCountAsync(2);

        await page.GetByTestId("method").SelectOptionAsync("gradient");
        await classes.Nth(0).ClickAsync();
        var first = await classes.Nth(0).GetAttributeAsync("data-index");
        await Assertions.Expect(page.Locator("#map-caption")).ToContainTextAsync($"target {first}");
        var firstMap = await page.GetByTestId("map").GetAttributeAsync("src");

        await classes.Nth(1).ClickAsync();
        var second = await classes.Nth(1).GetAttributeAsync("data-index");
        Assert.NotEqual(first, second);
        await Assertions.Expect(page.Locator("#map-caption")).ToContainTextAsync($"target {second}");
        Assert.NotEqual(firstMap, await page.GetByTestId("map").GetAttributeAsync("src"));
        Assert.Empty(errors);
    }

    [Fact]
    public async Task A_text_file_gets_a_visible_alert_and_no_console_error()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        var text = Path.Combine(Path.GetTempPath(), $"not-an-image-{Guid.NewGuid():N}.txt");
        await File.WriteAllTextAsync(text, "this is not a picture");
        try
        {
            await page.GetByTestId("image").SetInputFilesAsync(text);
            var alert = page.GetByRole(AriaRole.Alert);
            await Assertions.Expect(alert).ToBeVisibleAsync();
            await Assertions.Expect(alert).ToContainTextAsync("not a PNG or JPEG");
        }
        finally
        {
            File.Delete(text);
        }
        // The browser logs the refused request itself; the page adds nothing of its own.
        Assert.DoesNotContain(errors, e => !e.StartsWith("Failed to load resource", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_narrow_window_keeps_everything_reachable_from_the_keyboard()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors, width: 380, height: 800);
        Assert.True(await page.EvaluateAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth + 1"), "the page scrolls sideways");
        // Tab reaches the model picker, the file input and the explain button.
        var reached = new HashSet<string>();
        for (var i = 0; i < 40; i++)
        {
            await page.Keyboard.PressAsync("Tab");
            if (await page.EvaluateAsync<string?>("document.activeElement?.dataset?.testid") is { } id) reached.Add(id);
        }
        Assert.Superset(new HashSet<string> { "model", "image", "method", "explain", "compare" }, reached);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(BrowserPage.Screenshots, "narrow.png"), FullPage = true });
        Assert.Empty(errors);
    }

    private static Task WaitForImageAsync(ILocator image) =>
        image.EvaluateAsync("img => img.complete && img.naturalWidth > 0 ? null : new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; })",
            null, new() { Timeout = 120_000 });
}
