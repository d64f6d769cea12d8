using System.Reflection;
using System.Text.RegularExpressions;
using SaliencyService.Api.Configuration;
using SaliencyService.Api.Models;
using SaliencyService.Tests.Support;
using Xunit;
using YamlDotNet.RepresentationModel;

namespace SaliencyService.Tests;

/// <summary>
/// What can be checked without a Docker engine or a cluster: the deployment files parse and agree
/// with the application (port, model store, probe routes, configuration keys, built project).
/// </summary>
public sealed class DeploymentFilesTests
{
    private static string Deployment(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Deployment", .. parts]);

    private static YamlMappingNode Yaml(string path)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(path)));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlNode At(YamlNode node, params string[] path) =>
        path.Aggregate(node, (current, key) => ((YamlMappingNode)current).Children[new YamlScalarNode(key)]);

    private static string Text(YamlNode node) => ((YamlScalarNode)node).Value!;

    [Fact]
    public void The_dockerfile_publishes_the_api_and_serves_the_store_on_8080()
    {
        var docker = File.ReadAllText(Deployment("Dockerfile"));
        Assert.Contains("dotnet publish src/Api", docker);
        Assert.Contains("-r linux-x64", docker);
        Assert.Contains("ASPNETCORE_URLS=http://+:8080", docker);
        Assert.Contains("Saliency__ModelStore=/data/models", docker);
        Assert.Contains("curl -fsS http://localhost:8080/health/ready", docker);
        Assert.Matches(@"(?m)^USER app$", docker);
        Assert.Contains("AS gpu", docker);
    }

    [Fact]
    public void The_GPU_image_has_the_CUDA_and_cuDNN_that_ONNX_Runtimes_CUDA_provider_loads()
    {
        // The provider links its CUDA runtime by major version and loads cuDNN 9 (ONNX Runtime's requirements).
        var provider = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so");
        var cudart = Assert.Single(ElfLibraries.Needed(provider), name => name.StartsWith("libcudart.so.", StringComparison.Ordinal));
        var docker = File.ReadAllText(Deployment("Dockerfile"));
        var gpu = Regex.Match(docker, @"(?m)^FROM nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu\S+ AS gpu$");
        Assert.True(gpu.Success, "the gpu stage is not built FROM an nvidia/cuda cudnn-runtime image");
        Assert.Equal(cudart["libcudart.so.".Length..], gpu.Groups[1].Value);
    }

    [Fact]
    public void Both_images_preload_the_tcmalloc_they_install()
    {
        // Ubuntu 24.04's package of tcmalloc (t64 ABI name) and the file it installs on x86-64.
        var docker = File.ReadAllText(Deployment("Dockerfile"));
        Assert.Equal(2, Regex.Matches(docker, @"apt-get install [^\n]*\blibtcmalloc-minimal4t64\b").Count);
        Assert.Equal(2, Regex.Matches(docker, @"LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal\.so\.4\b").Count);
    }

    [Fact]
    public void Both_images_and_the_bench_give_the_garbage_collector_one_young_generation_budget()
    {
        // The GC reads its gen0 budget only from the environment (bench/analysis.md, forty-fourth pass).
        var docker = File.ReadAllText(Deployment("Dockerfile"));
        var budgets = Regex.Matches(docker, @"\bDOTNET_GCgen0size=(0x[0-9a-fA-F]+)\b").Select(m => m.Groups[1].Value).ToArray();
        Assert.Equal(2, budgets.Length);
        Assert.Single(budgets.Distinct());
        var bench = File.ReadAllText(Deployment(Path.Combine("bench", "run.sh")));
        Assert.Matches(@"engine_env=\(env [^)]*\bDOTNET_GCgen0size=" + budgets[0] + @"\b", bench);
        var launch = File.ReadAllText(Deployment(Path.Combine("src", "Api", "Properties", "launchSettings.json")));
        Assert.Contains($"\"DOTNET_GCgen0size\": \"{budgets[0]}\"", launch);
    }

    [Fact]
    public void The_compose_stack_routes_the_gateway_to_the_service()
    {
        var compose = Yaml(Deployment("docker-compose.yml"));
        var service = At(compose, "services", "saliency");
        Assert.Equal("/data/models", Text(At(service, "environment", "Saliency__ModelStore")));
        Assert.Contains("models:/data/models", ((YamlSequenceNode)At(service, "volumes")).Select(Text));
        Assert.Contains("8080", ((YamlSequenceNode)At(service, "expose")).Select(Text));
        // Forwarded headers are trusted from anyone, so only the gateway may reach the service.
        Assert.Equal("true", Text(At(service, "environment", "ASPNETCORE_FORWARDEDHEADERS_ENABLED")));
        Assert.False(((YamlMappingNode)service).Children.ContainsKey("ports"));
        Assert.Contains("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", File.ReadAllText(Deployment("deploy", "nginx", "nginx.conf")));
        Assert.Equal("true", Text(At(service, "read_only")));
        AssertKnownSettings(((YamlMappingNode)At(service, "environment")).Children.Keys.Select(Text));

        var nginx = File.ReadAllText(Deployment("deploy", "nginx", "nginx.conf"));
        Assert.Contains("server saliency:8080", nginx);
        foreach (var route in new[] { "location /v1/", "location /v2", "location /swagger", "location /health/", "location = /v1/models",
                     "location = /metrics { return 404; }", "location / { proxy_pass" })
            Assert.Contains(route, nginx);
        // gRPC through the gateway: its own HTTP/2 listener, passed to the service's gRPC port.
        Assert.Contains("5081", ((YamlSequenceNode)At(service, "expose")).Select(Text));
        Assert.Contains("server saliency:5081", nginx);
        Assert.Contains("listen 8081 http2;", nginx);
        Assert.Contains("grpc_pass grpc://saliency_grpc;", nginx);
        Assert.Contains("8081:8081", ((YamlSequenceNode)At(compose, "services", "gateway", "ports")).Select(Text));
        Assert.Contains("saliency:8080", File.ReadAllText(Deployment("deploy", "prometheus", "prometheus.yml")));
    }

    [Fact]
    public void The_kubernetes_manifests_parse_and_match_the_app()
    {
        var manifests = Directory.GetFiles(Deployment("deploy", "k8s"), "*.yaml").ToDictionary(f => Path.GetFileName(f), Yaml);
        Assert.All(manifests.Values, m => { Assert.NotNull(At(m, "apiVersion")); Assert.NotNull(At(m, "kind")); Assert.NotNull(At(m, "metadata", "name")); });
        Assert.Equal(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PersistentVolumeClaim", "Secret", "Service"],
            manifests.Values.Select(m => Text(At(m, "kind"))).Order());

        var container = (YamlMappingNode)((YamlSequenceNode)At(manifests["deployment.yaml"], "spec", "template", "spec", "containers"))[0];
        Assert.Equal("8080", Text(At(((YamlSequenceNode)At(container, "ports"))[0], "containerPort")));
        Assert.Equal("/health/ready", Text(At(container, "readinessProbe", "httpGet", "path")));
        Assert.Equal("/health/ready", Text(At(container, "startupProbe", "httpGet", "path")));
        Assert.Equal("/health/live", Text(At(container, "livenessProbe", "httpGet", "path")));
        Assert.NotNull(At(container, "resources", "requests", "cpu"));
        Assert.Equal("/data/models", Text(At(((YamlSequenceNode)At(container, "volumeMounts"))[0], "mountPath")));

        var config = (YamlMappingNode)At(manifests["configmap.yaml"], "data");
        Assert.Equal("/data/models", Text(At(config, "Saliency__ModelStore")));
        // The oneDNN guard's verdict, the libstdc++ shim and the import checks' children need a writable /tmp.
        Assert.Equal("auto", Text(At(config, "Saliency__Explain__OneDnnMaxIsa")));
        Assert.True(double.Parse(Text(At(config, "Saliency__ModelStore__PollSeconds")), System.Globalization.CultureInfo.InvariantCulture) is > 0 and <= 5);
        AssertWritableTmp(container, At(manifests["deployment.yaml"], "spec", "template", "spec"));
        AssertKnownSettings(config.Children.Keys.Select(Text));
        Assert.Equal("saliency", Text(At(manifests["hpa.yaml"], "spec", "scaleTargetRef", "name")));
    }

    [Fact]
    public void The_kserve_runtime_serves_the_storage_initializers_folder_read_only_over_v2()
    {
        var runtime = Yaml(Deployment("deploy", "kserve", "servingruntime.yaml"));
        Assert.Equal("ServingRuntime", Text(At(runtime, "kind")));
        Assert.Equal("serving.kserve.io/v1alpha1", Text(At(runtime, "apiVersion")));
        var format = ((YamlSequenceNode)At(runtime, "spec", "supportedModelFormats"))[0];
        Assert.Equal("onnx", Text(At(format, "name")));
        Assert.Equal(["v2"], ((YamlSequenceNode)At(runtime, "spec", "protocolVersions")).Select(Text));

        var container = RuntimeContainer(runtime);
        Assert.Equal("kserve-container", Text(At(container, "name")));
        Assert.Equal("8080", Text(At(((YamlSequenceNode)At(container, "ports"))[0], "containerPort")));
        Assert.Equal("/v2/health/ready", Text(At(container, "readinessProbe", "httpGet", "path")));
        Assert.Equal("/v2/health/live", Text(At(container, "livenessProbe", "httpGet", "path")));
        var env = RuntimeEnvironment(runtime);
        Assert.Equal("/mnt/models", env["Saliency__ModelStore"]);
        Assert.Equal("true", env["Saliency__ModelStore__ReadOnly"]);
        Assert.Equal("{{.Name}}", env["Saliency__ModelStore__ModelName"]);
        AssertKnownSettings(env.Keys);
        AssertWritableTmp(container, At(runtime, "spec"));

        var service = Yaml(Deployment("deploy", "kserve", "inferenceservice.yaml"));
        Assert.Equal("InferenceService", Text(At(service, "kind")));
        var model = At(service, "spec", "predictor", "model");
        Assert.Equal(Text(At(runtime, "metadata", "name")), Text(At(model, "runtime")));
        Assert.Equal("onnx", Text(At(model, "modelFormat", "name")));
        Assert.Equal("v2", Text(At(model, "protocolVersion")));
        Assert.NotEmpty(Text(At(model, "storageUri")));
    }

    [Fact]
    public void The_kserve_grpc_runtime_is_the_rest_one_on_its_h2c_port_with_grpc_probes()
    {
        var runtime = Yaml(Deployment("deploy", "kserve", "servingruntime-grpc.yaml"));
        Assert.Equal("ServingRuntime", Text(At(runtime, "kind")));
        Assert.Equal(["grpc-v2"], ((YamlSequenceNode)At(runtime, "spec", "protocolVersions")).Select(Text));
        Assert.Equal("onnx", Text(At(((YamlSequenceNode)At(runtime, "spec", "supportedModelFormats"))[0], "name")));

        // Knative routes one port a container, and speaks HTTP/2 cleartext to a port named h2c.
        var container = RuntimeContainer(runtime);
        var port = Assert.Single((YamlSequenceNode)At(container, "ports"));
        Assert.Equal("h2c", Text(At(port, "name")));
        var number = Text(At(port, "containerPort"));
        var env = RuntimeEnvironment(runtime);
        Assert.Equal(number, env["Saliency__Grpc__Port"]);
        Assert.Equal(number, Text(At(container, "readinessProbe", "grpc", "port")));
        Assert.False(((YamlMappingNode)At(container, "readinessProbe", "grpc")).Children.ContainsKey("service")); // "": ready
        Assert.Equal(number, Text(At(container, "livenessProbe", "grpc", "port")));
        Assert.Equal("live", Text(At(container, "livenessProbe", "grpc", "service")));
        AssertKnownSettings(env.Keys);
        AssertWritableTmp(container, At(runtime, "spec"));

        // It serves the storage initializer's folder as the REST runtime does.
        foreach (var (setting, value) in RuntimeEnvironment(Yaml(Deployment("deploy", "kserve", "servingruntime.yaml"))))
            Assert.Equal(value, env[setting]);

        var service = Yaml(Deployment("deploy", "kserve", "inferenceservice-grpc.yaml"));
        var model = At(service, "spec", "predictor", "model");
        Assert.Equal(Text(At(runtime, "metadata", "name")), Text(At(model, "runtime")));
        Assert.Equal("grpc-v2", Text(At(model, "protocolVersion")));
    }

    [Fact]
    public async Task A_service_set_up_as_the_kserve_grpc_runtime_answers_knatives_probes_and_clients_on_its_h2c_port()
    {
        var name = Text(At(Yaml(Deployment("deploy", "kserve", "inferenceservice-grpc.yaml")), "metadata", "name"));
        var mnt = Directory.CreateDirectory(ServiceFactory.NewStoreDirectory()).FullName; // /mnt/models as the storage initializer leaves a bare model
        File.Copy(TestPaths.Fixture("mini_resnet", "model.onnx"), Path.Combine(mnt, "model.onnx"));
        File.Copy(TestPaths.Fixture("mini_resnet", "model.json"), Path.Combine(mnt, "model.json"));
        var runtime = Yaml(Deployment("deploy", "kserve", "servingruntime-grpc.yaml"));
        var container = RuntimeContainer(runtime);
        var probed = new[] { "readinessProbe", "livenessProbe" }.Select(probe => (YamlMappingNode)At(container, probe, "grpc"))
            .Select(grpc => grpc.Children.TryGetValue(new YamlScalarNode("service"), out var service) ? Text(service) : "");
        var environment = RuntimeEnvironment(runtime)
            .Where(e => e.Key != "Saliency__Grpc__Port") // a free port of the test's instead
            .ToDictionary(e => e.Key, e => e.Value.Replace("/mnt/models", mnt).Replace("{{.Name}}", name));
        try
        {
            using var service = await ServiceProcess.StartAsync(mnt, environment);
            using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(service.GrpcAddress);
            // Knative's gRPC probes, as the runtime writes them.
            var health = new Grpc.Health.V1.Health.HealthClient(channel);
            foreach (var probe in probed)
                Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving,
                    (await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest { Service = probe })).Status);
            // Open Inference gRPC clients through the InferenceService.
            var inference = new SaliencyService.Api.OpenInference.Grpc.GRPCInferenceService.GRPCInferenceServiceClient(channel);
            Assert.True((await inference.ModelReadyAsync(new() { Name = name })).Ready);
            Assert.Equal(name, (await inference.ModelMetadataAsync(new() { Name = name })).Name);
            // Knative's HTTP probe tries HTTP/2 cleartext first, and its proxy speaks it to an h2c port:
            // the REST routes answer there too.
            using var http2 = new HttpClient { BaseAddress = service.GrpcAddress, DefaultRequestVersion = System.Net.HttpVersion.Version20,
                DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http2.GetAsync("/v2/health/ready")).StatusCode);
            Assert.Contains($"\"name\":\"{name}\"", await http2.GetStringAsync($"/v2/models/{name}"));
        }
        finally
        {
            Directory.Delete(mnt, recursive: true);
        }
    }

    [Fact]
    public async Task The_binary_reads_the_settings_beside_it_wherever_it_is_started()
    {
        // `dotnet path/to/SaliencyService.Api.dll` from a folder without the service's appsettings.json.
        var elsewhere = Directory.CreateDirectory(ServiceFactory.NewStoreDirectory()).FullName;
        var store = Path.Combine(elsewhere, "models");
        try
        {
            using var service = await ServiceProcess.StartAsync(store, workingDirectory: elsewhere);
            Assert.Equal(System.Net.HttpStatusCode.OK, (await service.Client.GetAsync("/v1/models")).StatusCode);
            // The request is logged (or not) on the console logger's own thread: give it time to show.
            for (var wait = 0; wait < 20 && !service.Output.Contains("Request finished"); wait++) await Task.Delay(100);
            Assert.Contains($"Content root path: {AppContext.BaseDirectory.TrimEnd('/')}", service.Output);
            // appsettings.json quiets ASP.NET Core's per-request lines ("Microsoft.AspNetCore": "Warning").
            Assert.DoesNotContain("Request finished", service.Output);
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }
    }

    /// <summary>A serving runtime's container (a KServe runtime has one).</summary>
    private static YamlMappingNode RuntimeContainer(YamlNode runtime) => (YamlMappingNode)((YamlSequenceNode)At(runtime, "spec", "containers"))[0];

    /// <summary>A serving runtime's container's environment.</summary>
    private static Dictionary<string, string> RuntimeEnvironment(YamlNode runtime) =>
        ((YamlSequenceNode)At(RuntimeContainer(runtime), "env")).ToDictionary(e => Text(At(e, "name")), e => Text(At(e, "value")));

    /// <summary>
    /// A read-only root file system with /tmp mounted from the pod's emptyDir: the oneDNN guard's
    /// verdict and the libstdc++ shim are written there (without it, libtorch could not load on an
    /// older host, and each start ran the self-test).
    /// </summary>
    private static void AssertWritableTmp(YamlNode container, YamlNode podSpec)
    {
        Assert.Equal("true", Text(At(container, "securityContext", "readOnlyRootFilesystem")));
        var mount = ((YamlSequenceNode)At(container, "volumeMounts")).Single(m => Text(At(m, "mountPath")) == "/tmp");
        var volume = ((YamlSequenceNode)At(podSpec, "volumes")).Single(v => Text(At(v, "name")) == Text(At(mount, "name")));
        Assert.NotNull(At(volume, "emptyDir"));
    }

    /// <summary>
    /// Every Saliency__A__B key names a real property of <see cref="SaliencyOptions"/>, or of
    /// <see cref="ModelStoreOptions"/> beside the store's path (Saliency__ModelStore__PollSeconds).
    /// </summary>
    private static void AssertKnownSettings(IEnumerable<string> keys)
    {
        foreach (var key in keys.Where(k => k.StartsWith("Saliency__")))
        {
            var storeSync = key.StartsWith("Saliency__ModelStore__", StringComparison.Ordinal);
            var type = storeSync ? typeof(ModelStoreOptions) : typeof(SaliencyOptions);
            foreach (var part in key.Split("__").Skip(storeSync ? 2 : 1))
            {
                var property = type.GetProperty(part, BindingFlags.Public | BindingFlags.Instance);
                Assert.True(property is not null, $"{key}: {type.Name} has no property {part}");
                type = property!.PropertyType;
            }
        }
    }
}
