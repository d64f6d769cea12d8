// The explain engine's own ONNX Runtime kernels (domain ai.saliency), loaded by
// src/Explain/Serving/NativeOps.cs into every session that may run a backward graph.
//
// MaxPoolGrad(X, dY) -> dX, 2-D, NCHW: each output gradient goes to the first maximum of its
// window in X, as ONNX Runtime's MaxPool picks it for its Indices output; gradients of overlapping
// windows add. One pass over the windows, where the graph otherwise needs MaxPool's Indices output
// in the forward (a scalar kernel) and a ScatterElements in the backward (bench/analysis.md).
// With rectify = 1 or 2 it is also the backward of the rectifier that produced X (X = clamp(·, 0,
// upper), read by this max pool only): each cell's gradient (its positive part for 2, guided
// backprop) where 0 < X < upper, else 0, as libtorch's relu and hardtanh backward gate it. The
// plane is still in cache then, where the graph otherwise reads X and the gradient once more.
// Every shape is checked against the attributes before any memory is touched: a mismatch is an
// error status, never a read out of bounds.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>
#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT
#include "onnxruntime_lite_custom_op.h"

namespace {

struct MaxPoolGrad {
  MaxPoolGrad(const OrtApi* api, const OrtKernelInfo* info) : api_(api) {
    try {
      Ort::ConstKernelInfo attributes(info);
      kernel_ = attributes.GetAttributes<int64_t>("kernel_shape");
      strides_ = attributes.GetAttributes<int64_t>("strides");
      pads_ = attributes.GetAttributes<int64_t>("pads");
      dilations_ = attributes.GetAttributes<int64_t>("dilations");
      rectify_ = Optional<int64_t>(attributes, "rectify", 0);
      upper_ = Optional<float>(attributes, "upper", std::numeric_limits<float>::infinity());
    } catch (const std::exception& e) {
      error_ = std::string("MaxPoolGrad: ") + e.what();
    }
    if (error_.empty() && (rectify_ < 0 || rectify_ > 2 || !(upper_ > 0))) error_ = "MaxPoolGrad: rectify must be 0, 1 or 2 and upper above 0";
    bool positive = kernel_.size() == 2 && strides_.size() == 2 && dilations_.size() == 2 && pads_.size() == 4;
    for (size_t i = 0; positive && i < 2; ++i) positive = kernel_[i] > 0 && strides_[i] > 0 && dilations_[i] > 0 && pads_[i] >= 0 && pads_[i + 2] >= 0;
    if (error_.empty() && !positive) error_ = "MaxPoolGrad: needs 2-D kernel_shape, strides and dilations (> 0) and four pads (>= 0)";
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& x, const Ort::Custom::Tensor<float>& dy,
                      Ort::Custom::Tensor<float>& dx) {
    try {
      if (!error_.empty()) return Ort::Status(error_.c_str(), ORT_INVALID_ARGUMENT);
      const auto& xs = x.Shape();
      const auto& ys = dy.Shape();
      if (xs.size() != 4 || ys.size() != 4 || xs[0] != ys[0] || xs[1] != ys[1]) return Ort::Status("MaxPoolGrad: X and dY must be [N, C, H, W] alike", ORT_INVALID_ARGUMENT);
      for (size_t d = 0; d < 2; ++d) {
        const int64_t extent = (kernel_[d] - 1) * dilations_[d] + 1, span = xs[2 + d] + pads_[d] + pads_[d + 2];
        if (span < extent || ys[2 + d] != (span - extent) / strides_[d] + 1) return Ort::Status("MaxPoolGrad: dY's size is not the pooled size of X", ORT_INVALID_ARGUMENT);
      }
      Job job{x.Data(), dy.Data(), dx.Allocate(xs), xs[2], xs[3], ys[2], ys[3], this};
      return Ort::Status(api_->KernelContext_ParallelFor(context, &Plane, static_cast<size_t>(xs[0] * xs[1]), 0, &job));
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }

 private:
  struct Job {
    const float* x;
    const float* dy;
    float* dx;
    int64_t height, width, rows, columns;
    const MaxPoolGrad* op;
  };

  // One channel of one sample.
  static void Plane(void* data, size_t plane) {
    const Job& job = *static_cast<const Job*>(data);
    const MaxPoolGrad& op = *job.op;
    const int64_t area = job.height * job.width;
    const float* x = job.x + plane * area;
    const float* dy = job.dy + plane * job.rows * job.columns;
    float* dx = job.dx + plane * area;
    std::memset(dx, 0, sizeof(float) * area);
    const int64_t kh = op.kernel_[0], kw = op.kernel_[1], sh = op.strides_[0], sw = op.strides_[1];
    const int64_t dh = op.dilations_[0], dw = op.dilations_[1], ph = op.pads_[0], pw = op.pads_[1];
    for (int64_t i = 0; i < job.rows; ++i) {
      // The taps a of this row of windows that fall inside X: top + a·dh in [0, height).
      const int64_t top = i * sh - ph;
      const int64_t a0 = top >= 0 ? 0 : (-top + dh - 1) / dh;
      const int64_t a1 = std::min(kh, (job.height - top + dh - 1) / dh);
      for (int64_t j = 0; j < job.columns; ++j) {
        const int64_t left = j * sw - pw;
        const int64_t b0 = left >= 0 ? 0 : (-left + dw - 1) / dw;
        const int64_t b1 = std::min(kw, (job.width - left + dw - 1) / dw);
        float best = std::numeric_limits<float>::lowest();
        int64_t at = -1;
        for (int64_t a = a0; a < a1; ++a) {
          const int64_t row = (top + a * dh) * job.width + left;
          for (int64_t b = b0; b < b1; ++b) {
            const int64_t cell = row + b * dw;
            const bool greater = x[cell] > best; // strictly: the first maximum keeps its place
            best = greater ? x[cell] : best;
            at = greater ? cell : at;
          }
        }
        if (at >= 0) dx[at] += dy[i * job.columns + j];
      }
    }
    // Vectorised selects (the library is built with -O3): at -O2 g++ left a branch per cell,
    // mispredicted on the half of a rectifier's outputs that are 0 (ResNet-18's stem: the kernel
    // took 3.3 ms with the gate, against 1.1 ms now and 0.9 without it).
    const float upper = op.upper_;
    if (op.rectify_ == 1)
      for (int64_t k = 0; k < area; ++k) dx[k] = Open(x[k], upper) ? dx[k] : 0.0f;
    else if (op.rectify_ == 2)
      for (int64_t k = 0; k < area; ++k) dx[k] = Open(x[k], upper) ? std::max(dx[k], 0.0f) : 0.0f;
  }

  static bool Open(float x, float upper) { return (x > 0.0f) & (x < upper); }

  template <typename T>
  static T Optional(const Ort::ConstKernelInfo& attributes, const char* name, T fallback) {
    try {
      return attributes.GetAttribute<T>(name);
    } catch (const Ort::Exception&) {
      return fallback; // absent, or not of this type
    }
  }

  const OrtApi* api_;
  std::vector<int64_t> kernel_, strides_, pads_, dilations_;
  int64_t rectify_ = 0;
  float upper_ = std::numeric_limits<float>::infinity();
  std::string error_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  try {
    Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> max_pool_grad{
        Ort::Custom::CreateLiteCustomOp<MaxPoolGrad>("MaxPoolGrad", "CPUExecutionProvider")};
    static Ort::CustomOpDomain domain = [] {
      Ort::CustomOpDomain d{"ai.saliency"};
      d.Add(max_pool_grad.get());
      return d;
    }();
    Ort::UnownedSessionOptions(options).Add(domain);
    return nullptr;
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
  }
}
