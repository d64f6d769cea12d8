// Times the graphs a CUDA host runs for one model (bench/InProcess `gpu-graphs`) on ONNX Runtime's
// CUDA provider and on its CPU provider, as the service runs them: inputs and outputs in host
// memory, so each run includes its copies to and from the GPU. Prints one JSON line per
// measurement, and how far the CUDA outputs are from the CPU's.
//
// usage: ort_cuda_bench DIR REPEATS [PROFILE_DIR|-] [GRAPH:BATCH,...]
//   DIR holds forward.onnx, guided.onnx, summed.onnx (their weights may be external, weights.bin);
//   the cases default to forward:1,guided:1,summed:16,summed:50,forward:16.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Case {
  std::string graph;
  int64_t batch;
};

struct Outputs {
  std::vector<std::vector<float>> values;  // float outputs only, in order
};

// A provider's settings: CPU, or CUDA with TF32 on or off and a cuDNN algorithm search.
struct Variant {
  const char* name;
  bool cuda;
  const char* tf32;
  const char* search;  // cudnn_conv_algo_search: EXHAUSTIVE (the provider's default), HEURISTIC, DEFAULT
};

const Variant variants[] = {
    {"cpu", false, "0", ""},
    {"cuda", true, "0", "EXHAUSTIVE"},  // the service's settings
    {"cuda-tf32", true, "1", "EXHAUSTIVE"},  // the provider's defaults
    {"cuda-heuristic", true, "0", "HEURISTIC"},
    {"cuda-default-algo", true, "0", "DEFAULT"},
};

Ort::SessionOptions Options(const Variant& variant, const char* profile) {
  Ort::SessionOptions options;
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  options.SetExecutionMode(ExecutionMode::ORT_SEQUENTIAL);
  options.SetIntraOpNumThreads(static_cast<int>(std::thread::hardware_concurrency()));
  options.SetInterOpNumThreads(1);
  if (profile) options.EnableProfiling(profile);
  if (variant.cuda) {
    OrtCUDAProviderOptionsV2* cudaOptions = nullptr;
    Ort::ThrowOnError(Ort::GetApi().CreateCUDAProviderOptions(&cudaOptions));
    const char* keys[] = {"device_id", "use_tf32", "cudnn_conv_algo_search"};
    const char* values[] = {"0", variant.tf32, variant.search};
    Ort::ThrowOnError(Ort::GetApi().UpdateCUDAProviderOptions(cudaOptions, keys, values, 3));
    options.AppendExecutionProvider_CUDA_V2(*cudaOptions);
    Ort::GetApi().ReleaseCUDAProviderOptions(cudaOptions);
  }
  return options;
}

// Runs the session on a seeded uniform image batch and target −1 (the top class); returns the
// float outputs and the sorted milliseconds of `repeats` runs after `warmUp`.
std::pair<Outputs, std::vector<double>> Time(Ort::Session& session, int64_t batch, int warmUp, int repeats) {
  Ort::AllocatorWithDefaultOptions allocator;
  auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<Ort::AllocatedStringPtr> held;
  std::vector<const char*> inputNames, outputNames;
  std::vector<Ort::Value> inputs;
  std::vector<std::vector<float>> floatData;
  std::vector<std::vector<int64_t>> intData;
  floatData.reserve(session.GetInputCount());
  intData.reserve(session.GetInputCount());
  for (size_t i = 0; i < session.GetInputCount(); i++) {
    held.push_back(session.GetInputNameAllocated(i, allocator));
    inputNames.push_back(held.back().get());
    auto type = session.GetInputTypeInfo(i);  // owns what info views
    auto info = type.GetTensorTypeAndShapeInfo();
    auto shape = info.GetShape();
    for (auto& d : shape) d = d < 0 ? batch : d;
    size_t count = 1;
    for (auto d : shape) count *= static_cast<size_t>(d);
    if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
      intData.emplace_back(count, -1);
      inputs.push_back(Ort::Value::CreateTensor<int64_t>(memory, intData.back().data(), count, shape.data(), shape.size()));
    } else {
      std::mt19937 random(1);
      std::uniform_real_distribution<float> uniform(-2.f, 2.f);
      floatData.emplace_back(count);
      for (auto& v : floatData.back()) v = uniform(random);
      inputs.push_back(Ort::Value::CreateTensor<float>(memory, floatData.back().data(), count, shape.data(), shape.size()));
    }
  }
  for (size_t i = 0; i < session.GetOutputCount(); i++) {
    held.push_back(session.GetOutputNameAllocated(i, allocator));
    outputNames.push_back(held.back().get());
  }
  auto run = [&] {
    return session.Run(Ort::RunOptions{nullptr}, inputNames.data(), inputs.data(), inputs.size(), outputNames.data(), outputNames.size());
  };
  for (int i = 0; i < warmUp; i++) run();
  std::vector<double> times;
  for (int i = 0; i < repeats; i++) {
    auto start = std::chrono::steady_clock::now();
    auto values = run();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  Outputs outputs;
  for (auto& value : run()) {
    auto info = value.GetTensorTypeAndShapeInfo();
    if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) continue;
    const float* data = value.GetTensorData<float>();
    outputs.values.emplace_back(data, data + info.GetElementCount());
  }
  return {outputs, times};
}

// max |a − b| over max |b|, the largest over the outputs.
double RelativeDifference(const Outputs& a, const Outputs& b) {
  double worst = 0;
  for (size_t o = 0; o < a.values.size() && o < b.values.size(); o++) {
    double difference = 0, scale = 0;
    for (size_t i = 0; i < a.values[o].size(); i++) {
      difference = std::max(difference, std::fabs(static_cast<double>(a.values[o][i]) - b.values[o][i]));
      scale = std::max(scale, std::fabs(static_cast<double>(b.values[o][i])));
    }
    worst = std::max(worst, scale > 0 ? difference / scale : difference);
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: ort_cuda_bench DIR REPEATS [PROFILE_DIR|-] [GRAPH:BATCH,...]\n");
    return 2;
  }
  const std::string folder = argv[1];
  const int repeats = std::stoi(argv[2]);
  const char* profileDir = argc > 3 && std::string(argv[3]) != "-" ? argv[3] : nullptr;
  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "ort_cuda_bench");
  // VARIANTS=N: the first N provider settings only (2: CPU and the service's CUDA settings).
  const long variantCount = std::getenv("VARIANTS") ? std::atol(std::getenv("VARIANTS")) : 5;
  std::vector<Case> cases;
  std::string list = argc > 4 ? argv[4] : "forward:1,guided:1,summed:16,summed:50,forward:16";
  for (size_t start = 0; start < list.size();) {
    size_t comma = list.find(',', start), colon = list.find(':', start);
    if (comma == std::string::npos) comma = list.size();
    cases.push_back({list.substr(start, colon - start), std::stoll(list.substr(colon + 1, comma - colon - 1))});
    start = comma + 1;
  }
  for (const auto& c : cases) {
    const std::string path = folder + "/" + c.graph + ".onnx";
    Outputs reference;
    for (const auto& variant : variants) {
      if (&variant - variants >= variantCount) break;
      const bool cuda = variant.cuda;
      if (!cuda && c.batch == 50) continue;  // the CPU reference of 50 samples adds minutes and no information
      const std::string provider = variant.name;
      std::string prefix;
      if (profileDir && &variant == &variants[1]) prefix = std::string(profileDir) + "/" + c.graph + "-b" + std::to_string(c.batch);
      try {
        auto start = std::chrono::steady_clock::now();
        Ort::Session session(env, path.c_str(), Options(variant, prefix.empty() ? nullptr : prefix.c_str()));
        double loadMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        auto [outputs, times] = Time(session, c.batch, cuda ? 20 : 5, cuda ? repeats : std::max(5, repeats / 4));
        if (!prefix.empty()) session.EndProfilingAllocated(Ort::AllocatorWithDefaultOptions());
        double difference = -1;
        if (!cuda) reference = outputs;
        else if (!reference.values.empty()) difference = RelativeDifference(outputs, reference);
        std::printf("{\"graph\":\"%s\",\"batch\":%lld,\"provider\":\"%s\",\"load_ms\":%.1f,\"p50_ms\":%.3f,\"p10_ms\":%.3f,\"p90_ms\":%.3f,\"rel_diff_vs_cpu\":%.3g}\n",
                    c.graph.c_str(), static_cast<long long>(c.batch), provider.c_str(), loadMs, times[times.size() / 2],
                    times[times.size() / 10], times[times.size() * 9 / 10], difference);
        std::fflush(stdout);
      } catch (const Ort::Exception& e) {
        std::string message = e.what();  // one JSON line: no newlines or quotes
        std::replace_if(message.begin(), message.end(), [](char ch) { return ch == '\n' || ch == '"' || ch == '\\'; }, ' ');
        std::printf("{\"graph\":\"%s\",\"batch\":%lld,\"provider\":\"%s\",\"error\":\"%s\"}\n", c.graph.c_str(),
                    static_cast<long long>(c.batch), provider.c_str(), message.c_str());
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
