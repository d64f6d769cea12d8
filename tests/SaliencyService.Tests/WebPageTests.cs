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
        await page.GetByTestId("model").SelectOptionAsync("resnet18");
        await Assertions.Expect(page.Locator("#model-facts")).ToContainTextAsync("(pixel − [103.06, 115.9, 123.15])"); // its model.json: BGR, scale 1, mean per channel
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

    [Fact]
    public async Task Drawing_options_redraw_the_kept_map_and_downloads_give_png_json_and_npy()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        await page.GetByTestId("model").SelectOptionAsync("seed-cnn");
        await page.GetByTestId("image").SetInputFilesAsync(Sample("square.png"));
        await Assertions.Expect(page.GetByTestId("predictions").Locator("button")).ToHaveCountAsync(2);
        await page.GetByTestId("method").SelectOptionAsync("integrated-gradients");
        await page.GetByTestId("explain").ClickAsync();
        await Assertions.Expect(page.Locator("#map-caption")).ToContainTextAsync("integrated-gradients");
        var heatmap = await page.GetByTestId("map").GetAttributeAsync("src");

        // Another view of the same map: the service draws it anew from the map it kept.
        await page.Locator("#view").SelectOptionAsync("overlay");
        await Assertions.Expect(page.Locator("#map-caption")).ToContainTextAsync("cached map");
        Assert.NotEqual(heatmap, await page.GetByTestId("map").GetAttributeAsync("src"));

        var npy = await page.RunAndWaitForDownloadAsync(() => page.Locator("#download-npy").ClickAsync());
        var bytes = await File.ReadAllBytesAsync((await npy.PathAsync())!);
        Assert.Equal([0x93, .. "NUMPY"u8.ToArray()], bytes[..6]);
        Assert.EndsWith(".npy", npy.SuggestedFilename);
        var json = await page.RunAndWaitForDownloadAsync(() => page.Locator("#download-json").ClickAsync());
        Assert.Contains("\"method\": \"integrated-gradients\"", await File.ReadAllTextAsync((await json.PathAsync())!));
        var png = await page.RunAndWaitForDownloadAsync(() => page.Locator("#download-png").ClickAsync());
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, (await File.ReadAllBytesAsync((await png.PathAsync())!))[..4]);
        Assert.Empty(errors);
    }

    [Fact]
    public async Task A_long_comparison_shows_progress_and_can_be_cancelled()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        await page.GetByTestId("model").SelectOptionAsync("resnet18");
        await page.GetByTestId("image").SetInputFilesAsync(Sample("rocket.jpg"));
        await Assertions.Expect(page.GetByTestId("predictions").Locator("button")).ToHaveCountAsync(5);
        await page.GetByTestId("compare").ClickAsync();
        await Assertions.Expect(page.Locator("#progress")).ToBeVisibleAsync();
        await page.Locator("#cancel").ClickAsync();
        await Assertions.Expect(page.Locator("#status")).ToContainTextAsync("Cancelled");
        await Assertions.Expect(page.Locator("#cancel")).ToBeHiddenAsync();
        Assert.True(await page.GetByTestId("gallery").Locator("img[src^='data:']").CountAsync() < 8);
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToBeHiddenAsync();
        Assert.Empty(errors);
    }

    [Fact]
    public async Task A_model_is_imported_replaced_and_deleted_from_the_page()
    {
        var errors = new List<string>();
        var page = await browser.OpenAsync(errors);
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.Locator("#manage summary").ClickAsync();
        await page.Locator("#import-file").SetInputFilesAsync(TestPaths.Fixture("seed_cnn", "model.onnx"));
        await page.Locator("#import-name").FillAsync("shapes");
        await page.Locator("#import-layout").SelectOptionAsync("NHWC");
        await page.Locator("#import-labels").FillAsync("box\nball");

        // The form's fields reach the manifest: a wrong one is the service's 400, an unreadable number the page's own alert.
        var submit = page.Locator("#import-form button[type=submit]");
        await page.Locator("#import-output").FillAsync("logits");
        await submit.ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("output 'logits' is not an output of the model", new() { Timeout = 60_000 });
        await page.Locator("#import-output").FillAsync("");
        await page.Locator("#import-size").FillAsync("32");
        await submit.ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("height 32 disagrees with the model input's fixed height 64", new() { Timeout = 60_000 });
        await page.Locator("#import-size").FillAsync("64×64");
        await page.Locator("#import-scale").FillAsync("two");
        await submit.ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Pixel scale: 'two' is not a number");

        // A model that takes values in [-1, 1]: pixel × 2/255 − 1.
        await page.Locator("#import-scale").FillAsync("2/255");
        await page.Locator("#import-mean").FillAsync("1");
        await submit.ClickAsync();
        await Assertions.Expect(page.GetByTestId("model")).ToHaveValueAsync("shapes", new() { Timeout = 60_000 });
        await Assertions.Expect(page.Locator("#model-facts")).ToContainTextAsync("box, ball");
        await Assertions.Expect(page.Locator("#model-facts")).ToContainTextAsync("(pixel ÷ 127.5 − 1)");

        // The same name again is refused until "replace" is ticked.
        await page.Locator("#import-form button[type=submit]").ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("replace=true");
        await page.Locator("#import-replace").CheckAsync();
        await page.Locator("#import-form button[type=submit]").ClickAsync();
        await Assertions.Expect(page.Locator("#status")).ToContainTextAsync("Imported shapes", new() { Timeout = 60_000 });
        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToBeHiddenAsync();

        await page.Locator("#delete-model").ClickAsync();
        await Assertions.Expect(page.Locator("#status")).ToContainTextAsync("Deleted shapes");
        Assert.DoesNotContain("shapes", await page.GetByTestId("model").Locator("option").AllTextContentsAsync());
        Assert.DoesNotContain(errors, e => !e.StartsWith("Failed to load resource", StringComparison.Ordinal)); // the 409, logged by the browser
    }

    private static Task WaitForImageAsync(ILocator image) =>
        image.EvaluateAsync("img => img.complete && img.naturalWidth > 0 ? null : new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; })",
            null, new() { Timeout = 120_000 });
}
