using Microsoft.Extensions.FileProviders;

namespace SaliencyService.Api.Apis;

/// <summary>
/// The web page at / (static files from <c>Page/</c> beside the binary) and the bundled sample
/// images it offers (<c>/samples</c>): no CDN, so it works offline behind the gateway.
/// </summary>
public static class PageApi
{
    public static string PageDirectory => Path.Combine(AppContext.BaseDirectory, "Page");
    public static string SamplesDirectory => Path.Combine(AppContext.BaseDirectory, "Samples");

    private static readonly string[] SampleExtensions = [".png", ".jpg", ".jpeg"];

    public static WebApplication UsePage(this WebApplication app)
    {
        var page = new PhysicalFileProvider(PageDirectory);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = page });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = page });
        if (Directory.Exists(SamplesDirectory))
            app.UseStaticFiles(new StaticFileOptions { FileProvider = new PhysicalFileProvider(SamplesDirectory), RequestPath = "/samples" });
        app.MapGet("/samples", Samples).ExcludeFromDescription();
        return app;
    }

    /// <summary>The names of the bundled sample images.</summary>
    public static IResult Samples() => TypedResults.Ok(Directory.Exists(SamplesDirectory)
        ? Directory.EnumerateFiles(SamplesDirectory).Where(f => SampleExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()
        : []);
}
