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
//
// Col2Im(cols) -> image, 2-D: ONNX's Col2Im (opset 18) with image_shape and block_shape as
// attributes. cols [N, C·kh·kw, L] holds, per block (window) of the image, its kh·kw cells; cells of
// overlapping blocks add. A strided convolution's input gradient is MatMul(Wᵀ, dY) then this: ONNX
// Runtime's ConvTranspose does the same product, then a scalar scatter several times slower.
//
// Every shape is checked against the attributes before any memory is touched: a mismatch is an
// error status, never a read out of bounds.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <string>
#include <vector>
#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT
#include "onnxruntime_lite_custom_op.h"

namespace {

// Sets a custom op's float output shape from inside its shape inference. ONNX Runtime's C++
// wrapper (ShapeInferContext::SetOutputShape) writes a symbolic dimension as -2, which its C API
// refuses (it wants -1 beside the symbol's name), so the C API is called directly.
OrtStatus* SetOutputShape(OrtShapeInferContext* context, const Ort::ShapeInferContext::Shape& shape) {
  const OrtApi& api = Ort::GetApi();
  std::vector<int64_t> dims;
  std::vector<const char*> symbols;
  for (const auto& d : shape) {
    dims.push_back(d.IsInt() ? d.AsInt() : -1);
    symbols.push_back(d.IsInt() ? "" : d.AsSym());
  }
  OrtTensorTypeAndShapeInfo* info = nullptr;
  OrtStatus* status = api.CreateTensorTypeAndShapeInfo(&info);
  if (!status) status = api.SetTensorElementType(info, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT);
  if (!status) status = api.SetDimensions(info, dims.data(), dims.size());
  if (!status) status = api.SetSymbolicDimensions(info, symbols.data(), symbols.size());
  if (!status) status = api.ShapeInferContext_SetOutputTypeShape(context, 0, info);
  if (info) api.ReleaseTensorTypeAndShapeInfo(info);
  return status;
}

// ⌈a / b⌉ for b > 0, and 0 for a <= 0, without forming a + b (attributes may be near INT64_MAX).
int64_t CeilDiv(int64_t a, int64_t b) { return a > 0 ? (a - 1) / b + 1 : 0; }

// A 2-D window's attributes, as MaxPool and Col2Im name them: the kernel's (block's) shape,
// strides, pads (begins, then ends) and dilations.
struct Window {
  std::vector<int64_t> kernel, strides, pads, dilations;

  void Read(const Ort::ConstKernelInfo& attributes, const char* kernel_name) {
    kernel = attributes.GetAttributes<int64_t>(kernel_name);
    strides = attributes.GetAttributes<int64_t>("strides");
    pads = attributes.GetAttributes<int64_t>("pads");
    dilations = attributes.GetAttributes<int64_t>("dilations");
  }

  // Two of each (four pads), all above 0 (pads at least 0).
  bool Valid() const {
    bool valid = kernel.size() == 2 && strides.size() == 2 && dilations.size() == 2 && pads.size() == 4;
    for (size_t d = 0; valid && d < 2; ++d) valid = kernel[d] > 0 && strides[d] > 0 && dilations[d] > 0 && pads[d] >= 0 && pads[d + 2] >= 0;
    return valid;
  }

  // The windows along axis d of a valid window over `size` cells: 0 where none fits (or the
  // attributes overflow).
  int64_t Count(size_t d, int64_t size) const {
    int64_t reach = 0, span = 0;
    if (__builtin_mul_overflow(kernel[d] - 1, dilations[d], &reach) || __builtin_add_overflow(size, pads[d], &span) ||
        __builtin_add_overflow(span, pads[d + 2], &span) || span <= reach)
      return 0;
    return (span - reach - 1) / strides[d] + 1;
  }
};

struct MaxPoolGrad {
  MaxPoolGrad(const OrtApi* api, const OrtKernelInfo* info) : api_(api) {
    try {
      Ort::ConstKernelInfo attributes(info);
      window_.Read(attributes, "kernel_shape");
      rectify_ = Optional<int64_t>(attributes, "rectify", 0);
      upper_ = Optional<float>(attributes, "upper", std::numeric_limits<float>::infinity());
    } catch (const std::exception& e) {
      error_ = std::string("MaxPoolGrad: ") + e.what();
    }
    if (error_.empty() && (rectify_ < 0 || rectify_ > 2 || !(upper_ > 0))) error_ = "MaxPoolGrad: rectify must be 0, 1 or 2 and upper above 0";
    if (error_.empty() && !window_.Valid()) error_ = "MaxPoolGrad: needs 2-D kernel_shape, strides and dilations (> 0) and four pads (>= 0)";
  }

  // dX has X's shape (told to ONNX Runtime's graph transforms, as Col2Im's).
  static OrtStatus* ORT_API_CALL InferShape(const OrtCustomOp*, OrtShapeInferContext* raw) {
    try {
      Ort::ShapeInferContext context(&Ort::GetApi(), raw);
      return context.GetInputCount() == 2 ? SetOutputShape(raw, context.GetInputShape(0)) : nullptr;
    } catch (const std::exception&) {
      return nullptr;
    }
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& x, const Ort::Custom::Tensor<float>& dy,
                      Ort::Custom::Tensor<float>& dx) {
    try {
      if (!error_.empty()) return Ort::Status(error_.c_str(), ORT_INVALID_ARGUMENT);
      const auto& xs = x.Shape();
      const auto& ys = dy.Shape();
      if (xs.size() != 4 || ys.size() != 4 || xs[0] != ys[0] || xs[1] != ys[1]) return Ort::Status("MaxPoolGrad: X and dY must be [N, C, H, W] alike", ORT_INVALID_ARGUMENT);
      for (size_t d = 0; d < 2; ++d)
        if (window_.Count(d, xs[2 + d]) != ys[2 + d] || ys[2 + d] == 0) return Ort::Status("MaxPoolGrad: dY's size is not the pooled size of X", ORT_INVALID_ARGUMENT);
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
    const Window& w = op.window_;
    const int64_t kh = w.kernel[0], kw = w.kernel[1], sh = w.strides[0], sw = w.strides[1];
    const int64_t dh = w.dilations[0], dw = w.dilations[1], ph = w.pads[0], pw = w.pads[1];
    for (int64_t i = 0; i < job.rows; ++i) {
      // The taps a of this row of windows that fall inside X: top + a·dh in [0, height).
      const int64_t top = i * sh - ph;
      const int64_t a0 = CeilDiv(-top, dh), a1 = std::min(kh, CeilDiv(job.height - top, dh));
      for (int64_t j = 0; j < job.columns; ++j) {
        const int64_t left = j * sw - pw;
        const int64_t b0 = CeilDiv(-left, dw), b1 = std::min(kw, CeilDiv(job.width - left, dw));
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
  Window window_;
  int64_t rectify_ = 0;
  float upper_ = std::numeric_limits<float>::infinity();
  std::string error_;
};

struct Col2Im {
  Col2Im(const OrtApi* api, const OrtKernelInfo* info) : api_(api) {
    try {
      Ort::ConstKernelInfo attributes(info);
      image_ = attributes.GetAttributes<int64_t>("image_shape");
      window_.Read(attributes, "block_shape");
    } catch (const std::exception& e) {
      error_ = std::string("Col2Im: ") + e.what();
    }
    bool valid = image_.size() == 2 && window_.Valid() && !__builtin_mul_overflow(window_.kernel[0], window_.kernel[1], &cells_);
    for (size_t d = 0; valid && d < 2; ++d) valid = image_[d] > 0 && (blocks_[d] = window_.Count(d, image_[d])) > 0;
    if (error_.empty() && !valid) error_ = "Col2Im: needs 2-D image_shape, block_shape, strides and dilations (> 0), four pads (>= 0) and a block that fits";
  }

  // The output's shape, [N, C, H, W] with the columns' own N, so that ONNX Runtime's graph
  // transforms know it (its blocked layout takes an elementwise op only over operands of one
  // shape). Where it cannot tell, the shape stays unknown and Compute reports what is wrong.
  static OrtStatus* ORT_API_CALL InferShape(const OrtCustomOp*, OrtShapeInferContext* raw) {
    try {
      Ort::ShapeInferContext context(&Ort::GetApi(), raw);
      const auto image = context.GetAttrInts("image_shape");
      const auto block = context.GetAttrInts("block_shape");
      const auto& cols = context.GetInputShape(0);
      int64_t cells = 0;
      if (image.size() != 2 || block.size() != 2 || cols.size() != 3 || !cols[1].IsInt() || image[0] <= 0 || image[1] <= 0 ||
          block[0] <= 0 || block[1] <= 0 || __builtin_mul_overflow(block[0], block[1], &cells) || cols[1].AsInt() % cells != 0)
        return nullptr;
      return SetOutputShape(raw, {cols[0], cols[1].AsInt() / cells, image[0], image[1]});
    } catch (const std::exception&) {
      return nullptr;
    }
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& cols, Ort::Custom::Tensor<float>& image) {
    try {
      if (!error_.empty()) return Ort::Status(error_.c_str(), ORT_INVALID_ARGUMENT);
      const auto& cs = cols.Shape();
      if (cs.size() != 3 || cs[1] % cells_ != 0 || cs[2] % blocks_[0] != 0 || cs[2] / blocks_[0] != blocks_[1])
        return Ort::Status("Col2Im: cols must be [N, C * kh * kw, L] with L the image's blocks", ORT_INVALID_ARGUMENT);
      const int64_t channels = cs[1] / cells_;
      Job job{cols.Data(), image.Allocate({cs[0], channels, image_[0], image_[1]}), this};
      Ort::Status status(api_->KernelContext_ParallelFor(context, &Rows, static_cast<size_t>(cs[0] * channels * CeilDiv(image_[0], Band)), 0, &job));
      if (status.IsOK() && job.failed) return Ort::Status("Col2Im: out of memory", ORT_FAIL);
      return status;
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }

 private:
  struct Job {
    const float* cols;
    float* image;
    const Col2Im* op;
    std::atomic<bool> failed{false};
  };

  // Rows [y0, y0 + Band) of one channel of one sample: the sums of the cells that land on them,
  // gathered so that each thread writes its own rows. Block row i reaches image row y through tap
  // a where i·sh − ph + a·dh = y. Along a row, cell b of block j lands at x = j·sw + off
  // (off = b·dw − pw): per residue r of x modulo sw those are contiguous, so the sums run as vector
  // adds into one buffer per residue, interleaved into the rows at the end.
  static constexpr int64_t Band = 8;

  static void Rows(void* data, size_t index) {
    Job& job = *static_cast<Job*>(data);
    const Col2Im& op = *job.op;
    const Window& w = op.window_;
    const int64_t height = op.image_[0], width = op.image_[1], rows = op.blocks_[0], columns = op.blocks_[1];
    const int64_t kh = w.kernel[0], kw = w.kernel[1], sh = w.strides[0], sw = w.strides[1];
    const int64_t dh = w.dilations[0], dw = w.dilations[1], ph = w.pads[0], pw = w.pads[1];
    const int64_t bands = CeilDiv(height, Band);
    const int64_t plane = static_cast<int64_t>(index) / bands, y0 = static_cast<int64_t>(index) % bands * Band;
    const int64_t y1 = std::min(height, y0 + Band);
    const float* cols = job.cols + plane * kh * kw * rows * columns; // sample and channel: kh·kw rows of L
    const int64_t residues = std::min(sw, width), stride = CeilDiv(width, sw); // residue r holds x = k·sw + r
    const int64_t line = residues * stride;                                     // one image row, by residue
    thread_local std::vector<float> sums;
    try {
      sums.assign(static_cast<size_t>((y1 - y0) * line), 0.0f);
    } catch (const std::exception&) {
      job.failed = true; // no exception may leave a thread-pool task
      return;
    }
    for (int64_t b = 0; b < kw; ++b) {
      const int64_t off = b * dw - pw;
      const int64_t q = FloorDiv(off, sw), r = off - q * sw; // x = (j + q)·sw + r
      const int64_t count = CeilDiv(width - r, sw);           // cells of residue r in a row
      const int64_t j0 = std::max<int64_t>(0, -q), n = std::min(columns, count - q) - j0;
      if (n <= 0) continue;
      for (int64_t a = 0; a < kh; ++a) {
        const float* tap = cols + (a * kw + b) * rows * columns + j0;
        for (int64_t y = y0; y < y1; ++y) {
          const int64_t top = y + ph - a * dh; // = i·sh
          if (top < 0 || top % sh != 0 || top / sh >= rows) continue;
          const float* __restrict from = tap + top / sh * columns;
          float* __restrict to = sums.data() + (y - y0) * line + r * stride + q + j0;
          for (int64_t j = 0; j < n; ++j) to[j] += from[j];
        }
      }
    }
    for (int64_t y = y0; y < y1; ++y) {
      const float* row = sums.data() + (y - y0) * line;
      float* out = job.image + (plane * height + y) * width;
      for (int64_t r = 0; r < residues; ++r)
        for (int64_t k = 0, count = CeilDiv(width - r, sw); k < count; ++k) out[k * sw + r] = row[r * stride + k];
    }
  }

  static int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

  const OrtApi* api_;
  std::vector<int64_t> image_;
  Window window_;
  int64_t cells_ = 0, blocks_[2] = {0, 0};
  std::string error_;
};

// A kernel on the CPU provider, with its own shape inference (see SetOutputShape).
template <typename Op>
std::unique_ptr<Ort::Custom::OrtLiteCustomOp> Kernel(const char* name) {
  std::unique_ptr<Ort::Custom::OrtLiteCustomOp> op{Ort::Custom::CreateLiteCustomOp<Op>(name, "CPUExecutionProvider")};
  op->InferOutputShapeFn = &Op::InferShape;
  return op;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  try {
    Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> max_pool_grad = Kernel<MaxPoolGrad>("MaxPoolGrad");
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> col2im = Kernel<Col2Im>("Col2Im");
    static Ort::CustomOpDomain domain = [] {
      Ort::CustomOpDomain d{"ai.saliency"};
      d.Add(max_pool_grad.get());
      d.Add(col2im.get());
      return d;
    }();
    Ort::UnownedSessionOptions(options).Add(domain);
    return nullptr;
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
  }
}
