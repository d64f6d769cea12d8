using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using Microsoft.Net.Http.Headers;
using SaliencyService.Explain.Tensors;

namespace SaliencyService.Api.Apis;

/// <summary>
/// A float32 map as a <c>.npy</c> download, written from the map itself into the response: a
/// 224² RGB map is 600 kB, which a byte array of the whole file would allocate (in the large-object
/// heap) and copy once more per answer.
/// </summary>
public sealed class NpyFile(float[] data, IReadOnlyList<long> shape, string fileName) : IResult
{
    public async Task ExecuteAsync(HttpContext context)
    {
        var header = Npy.Header(shape);
        var response = context.Response;
        response.ContentType = Npy.MediaType;
        response.ContentLength = header.Length + (long)data.Length * sizeof(float);
        response.Headers.ContentDisposition = new ContentDispositionHeaderValue("attachment") { FileName = fileName, FileNameStar = fileName }.ToString();
        Write(response.BodyWriter, header, data);
        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    private static void Write(PipeWriter writer, byte[] header, float[] data)
    {
        writer.Write(header);
        writer.Write(MemoryMarshal.AsBytes(data.AsSpan()));
    }
}
