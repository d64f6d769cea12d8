using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using SaliencyService.Explain.Torch;

namespace SaliencyService.Tests.Support;

/// <summary>
/// The service as a real OS process (the built SaliencyService.Api.dll on a loopback port), for
/// tests that must kill it the hard way.
/// </summary>
public sealed class ServiceProcess : IDisposable
{
    private readonly Process _process;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _output = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _errors = new();

    private ServiceProcess(Process process, Uri address, Uri grpcAddress)
    {
        _process = process;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        GrpcAddress = grpcAddress;
    }

    public HttpClient Client { get; }

    /// <summary>The gRPC (h2c) address: a port of its own per process, so processes never collide.</summary>
    public Uri GrpcAddress { get; }

    /// <param name="environment">Added to the service's environment (settings, test hooks).</param>
    /// <param name="likeTheImage">
    /// Addressed as the container image addresses it: its <c>ASPNETCORE_URLS=http://+:{port}</c> over
    /// the .NET base image's <c>ASPNETCORE_HTTP_PORTS={port}</c>.
    /// </param>
    /// <param name="workingDirectory">Where it starts; by default the folder of its binary, as in the image.</param>
    /// <param name="localhost">Addressed as <c>http://localhost:{port}</c>: both loopbacks, IPv4's and IPv6's.</param>
    /// <param name="launcher">
    /// A command and its arguments that start <c>dotnet</c> with the service's assembly, given as
    /// their last two arguments, in the same process (an <c>exec</c>): util-linux's <c>prlimit</c>
    /// for a low open-file limit, <c>unshare</c> for a mount of the service's own (see <see cref="Launchers"/>).
    /// </param>
    public static async Task<ServiceProcess> StartAsync(string store, IReadOnlyDictionary<string, string>? environment = null, bool likeTheImage = false,
        string? workingDirectory = null, bool localhost = false, IReadOnlyList<string>? launcher = null)
    {
        // FreePort's ports are released before the service binds them, so another test's process
        // (or an outgoing connection's local port) may take one meanwhile: the service then stops
        // ("address already in use", its REST port) or serves without gRPC (its gRPC port, which
        // it gives up rather than exit). Started again on new ports, unless the caller chose the
        // gRPC port itself.
        const int attempts = 3;
        var chosenGrpcPort = environment?.GetValueOrDefault("Saliency__Grpc__Port");
        for (var attempt = 1; ; attempt++)
        {
            var service = await StartOnceAsync(store, environment, likeTheImage, workingDirectory ?? AppContext.BaseDirectory, localhost, launcher ?? []);
            var portTaken = service.HasExited
                ? service._errors.Concat(service._output).Any(line => line.Contains("address already in use", StringComparison.OrdinalIgnoreCase)
                    && (chosenGrpcPort is null || !line.Contains($":{chosenGrpcPort}:", StringComparison.Ordinal)))
                : chosenGrpcPort is null && service.Output.Contains($"The gRPC port {service.GrpcAddress.Port} is in use");
            if (!service.HasExited && !portTaken) return service;
            var exitCode = service.HasExited ? service._process.ExitCode : 0;
            service.Dispose();
            if (!portTaken || attempt == attempts)
                throw new InvalidOperationException(exitCode != 0 ? $"The service exited with code {exitCode}." : "A port the service was given was taken.");
        }
    }

    /// <summary>The service started, ready or exited.</summary>
    private static async Task<ServiceProcess> StartOnceAsync(string store, IReadOnlyDictionary<string, string>? environment, bool likeTheImage,
        string workingDirectory, bool localhost, IReadOnlyList<string> launcher)
    {
        var address = new Uri($"http://127.0.0.1:{FreePort()}");
        string[] command = [.. launcher, "dotnet", Path.Combine(AppContext.BaseDirectory, "SaliencyService.Api.dll")];
        var start = new ProcessStartInfo(command[0])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in command[1..]) start.ArgumentList.Add(argument);
        var grpcAddress = new Uri($"http://127.0.0.1:{FreePort()}");
        start.Environment["ASPNETCORE_URLS"] = likeTheImage ? $"http://+:{address.Port}" : localhost ? $"http://localhost:{address.Port}" : address.ToString();
        if (likeTheImage) start.Environment["ASPNETCORE_HTTP_PORTS"] = address.Port.ToString();
        start.Environment["Saliency__Grpc__Port"] = grpcAddress.Port.ToString();
        start.Environment["Saliency__ModelStore"] = store;
        start.Environment["Saliency__SeedDemoModels"] = "false";
        // As in ServiceFactory: the spares fault no heap in (each would add ~1.5 s before readiness).
        start.Environment["Saliency__Explain__SpareHeapMegabytes"] = "0";
        // The service decides its own oneDNN cap, not the one this test process chose.
        start.Environment.Remove(OneDnnGuard.Variable);
        start.Environment.Remove(OneDnnGuard.ChoiceVariable);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        var process = Process.Start(start)!;
        var service = new ServiceProcess(process, address, grpcAddress);
        process.OutputDataReceived += (_, line) => { if (line.Data is not null) service._output.Enqueue(line.Data); };
        process.ErrorDataReceived += (_, line) => { if (line.Data is not null) service._errors.Enqueue(line.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        for (var attempt = 0; attempt < 600; attempt++)
        {
            if (process.HasExited)
            {
                process.WaitForExit(); // its output read to the end
                return service;
            }
            try
            {
                if ((await service.Client.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK) return service;
            }
            catch (HttpRequestException) { }
            await Task.Delay(100);
        }
        service.Dispose();
        throw new TimeoutException("The service did not become ready.");
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The file descriptors the service holds open now; 0 once it has ended.</summary>
    public int OpenDescriptors
    {
        get
        {
            try
            {
                return Directory.EnumerateFileSystemEntries($"/proc/{_process.Id}/fd").Count();
            }
            catch (DirectoryNotFoundException)
            {
                return 0;
            }
        }
    }

    /// <summary>What the service has logged on its standard output so far.</summary>
    public string Output => string.Join('\n', _output);

    /// <summary>The command lines of the service's child processes (its import check spare, ...), by process id.</summary>
    public IReadOnlyDictionary<int, string> Children()
    {
        var children = new Dictionary<int, string>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid)) continue;
            if (Read($"{directory}/stat") is not { } stat || int.Parse(ProcStat.Fields(stat)[1]) != _process.Id) continue;
            if (Read($"{directory}/cmdline") is { } commandLine) children[pid] = commandLine.Replace('\0', ' ').Trim();
        }
        return children;
    }

    /// <summary>A /proc file, or null for a process that has ended meanwhile.</summary>
    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The process's peak resident memory so far (Linux VmHWM), in bytes.</summary>
    public long PeakResidentBytes =>
        File.ReadLines($"/proc/{_process.Id}/status").Where(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024).Single();

    /// <summary>SIGKILL: no shutdown hooks, no finally blocks.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Client.Dispose();
        if (!_process.HasExited) Kill();
        _process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
