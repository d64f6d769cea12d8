namespace SaliencyService.Api.Swagger;

/// <summary>
/// Endpoint metadata describing a multipart/form-data body that the handler reads itself
/// (streamed or validated by hand), so that Swagger UI can still offer the upload form.
/// </summary>
public sealed record MultipartForm(params FormField[] Fields);

/// <summary>One part of a <see cref="MultipartForm"/>.</summary>
public sealed record FormField(string Name, string Description, bool IsFile = true, bool Required = false, bool Multiple = false);
