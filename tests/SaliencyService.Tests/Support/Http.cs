using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using SaliencyService.Contracts;
using Xunit;

namespace SaliencyService.Tests.Support;

/// <summary>Builds the contract's multipart requests and checks its problem+json answers.</summary>
public static class Http
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static MultipartFormDataContent Form(params (string Part, byte[] Bytes, string FileName)[] files)
    {
        var form = new MultipartFormDataContent();
        foreach (var (part, bytes, fileName) in files)
        {
            var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(content, part, fileName);
        }
        return form;
    }

    public static MultipartFormDataContent ImageForm(params string[] paths) =>
        Form(paths.Select(p => ("image", File.ReadAllBytes(p), Path.GetFileName(p))).ToArray());

    public static MultipartFormDataContent TensorForm(byte[] npy) => Form(("tensor", npy, "input.npy"));

    /// <summary>Imports a fixture model with its model.json under <paramref name="name"/>.</summary>
    public static async Task<ModelDescriptor> ImportFixtureAsync(HttpClient client, string fixture, string? name = null, bool replace = false)
    {
        using var form = ModelForm(File.ReadAllBytes(TestPaths.Fixture(fixture, "model.onnx")), name ?? fixture,
            File.ReadAllText(TestPaths.Fixture(fixture, "model.json")));
        var response = await client.PostAsync(replace ? "/v1/models?replace=true" : "/v1/models", form);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<ModelDescriptor>(Json))!;
    }

    public static MultipartFormDataContent ModelForm(byte[] onnx, string? name, string? manifest = null, string fileName = "model.onnx")
    {
        var form = Form(("file", onnx, fileName));
        if (name is not null) form.Add(new StringContent(name), "name");
        if (manifest is not null) form.Add(new StringContent(manifest), "manifest");
        return form;
    }

    /// <summary>A body compressed with <paramref name="coding"/> (gzip, deflate: zlib, br), as a client with request compression sends it.</summary>
    public static ByteArrayContent Compressed(byte[] plain, MediaTypeHeaderValue? contentType, string coding = "gzip")
    {
        using var packed = new MemoryStream();
        using (Stream compressor = coding switch
               {
                   "gzip" => new System.IO.Compression.GZipStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true),
                   "deflate" => new System.IO.Compression.ZLibStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true),
                   "br" => new System.IO.Compression.BrotliStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true),
                   _ => throw new ArgumentException(coding),
               })
            compressor.Write(plain);
        var content = new ByteArrayContent(packed.ToArray());
        content.Headers.ContentType = contentType;
        content.Headers.ContentEncoding.Add(coding);
        return content;
    }

    public static async Task<T> ReadAsync<T>(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {body}");
        return JsonSerializer.Deserialize<T>(body, Json)!;
    }

    public static async Task<byte[]> ReadBytesAsync(HttpResponseMessage response)
    {
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadAsByteArrayAsync();
    }

    /// <summary>Asserts an RFC 9457 problem with the given status and returns its detail.</summary>
    public static async Task<string> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal((int)status, problem.RootElement.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.RootElement.GetProperty("title").GetString()));
        var detail = problem.RootElement.TryGetProperty("detail", out var d) ? d.GetString() : null;
        return detail ?? "";
    }
}
