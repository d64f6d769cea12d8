using System.Net.Http.Headers;
using System.Text;

namespace SaliencyService.Tests.Support;

/// <summary>A multipart model upload that sends part of the file, then hangs.</summary>
public sealed class StallingUpload : HttpContent
{
    private readonly byte[] _model;
    private readonly CancellationTokenSource _hang = new();

    public void Release() => _hang.Cancel();

    public StallingUpload(byte[] model)
    {
        _model = model;
        Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=stall");
    }

    protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes("--stall\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nhalf\r\n" +
                                                        "--stall\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.onnx\"\r\n\r\n"));
        await stream.WriteAsync(_model.AsMemory(0, _model.Length / 2));
        await stream.FlushAsync();
        await Task.Delay(Timeout.Infinite, _hang.Token);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
