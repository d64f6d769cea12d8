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
// DepthwiseCol2Im(dY, W) -> dX is the same scatter for a depthwise convolution's input gradient,
// whose columns W[c, tap]·dY[n, c] are scaled as they are added, never written. Both take
// WinogradConv's optional residual R and rectifier gate G (below) after their own inputs: in a
// backward the strided block's other gradient and the rectifier before it, applied to each band
// of rows while it is in cache.
//
// SparseConvTranspose(dY, W) -> dX: the same input gradient from dY's non-zero cells only, for a
// dY that is mostly zeros (a strided max pool's gradient: ResNet's stem), where the product
// multiplies every cell.
//
// WinogradConv(X, W, B?, R?, G?) -> Y: a 3×3 convolution with stride 1, one cell of zero padding on every
// side, one group, 2-D NCHW, by Winograd's F(2×2, 3×3) or, with tile = 4, F(4×4, 3×3) (Lavin and
// Gray, 2016): each output M×M tile is (M + 2)² products of a transformed input tile with the
// transformed filter instead of 9·M² multiply-adds (16 for 36; 36 for 144). F(4×4) rounds several
// times more (its transforms' coefficients reach 8): 1-2e-5 of outputs of about one at 1,100
// channels, with the interpolation points below (2.7-5e-5 with Lavin's). With transposed = 1 it is
// that convolution's transpose, its input gradient: W its own weights [C, K, 3, 3] for X
// [N, C, H, W], read with the kernel flipped and the channel axes swapped as they are transformed.
// With stride = 2 it is a stride-2 3×3 convolution with one cell of padding (Y ⌈H/2⌉ × ⌈W/2⌉), and
// with transposed = 1 as well, that convolution's transpose (its input gradient: W its own weights
// [C, K, 3, 3] for X [N, C, H, W], Y 2H - 1 + output_padding high, likewise wide), both by a
// separable five-product algorithm (Winograd below: 25 products for 36 multiply-adds).
// A forward's bias B [K], residual R (Y's shape) and, with relu = 1, max(·, 0) are applied as each
// row is written, as ONNX Runtime's fused convolution applies them; in a backward, the residual
// (the other gradients of the same value) and, with rectify = 1 or 2, the backward of the rectifier
// whose output is G, as MaxPoolGrad's. B or R left out before G is a tensor of no elements.
// With F(4×4) tiles it takes 0.47-0.64× ONNX Runtime's direct kernel's time on ResNet's 3×3 shapes
// in a batch of 16 and 0.61-0.65× on the 64- and 128-channel ones for one sample
// (`in-process winograd`); the engine's passes use it as src/Explain/Mirror/WinogradConvolutions.cs
// says (bench/analysis.md). Each task transforms a row of 16 tiles of every input channel,
// multiplies while the transform is in cache and transforms the products back, so nothing the size
// of the activation is written between the steps; a filter too large to be read for every block
// (over 4 MiB transformed) is multiplied element by element for chunks of blocks instead (F(2×2)'s
// one block: split by output channels, each part of the filter read once all the same). Where
// the AVX-512 clone runs, the products use 16-float vectors, four groups of six output channels
// at once, and each patch cell of a block's 16 tiles is one masked gather (the transform took a
// third of the time it took cell by cell on Zen 5); elsewhere 8-float vectors and copied cells.
//
// Every shape is checked against the attributes before any memory is touched: a mismatch is an
// error status, never a read out of bounds.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#define ORT_API_MANUAL_INIT
#include "onnxruntime_cxx_api.h"
#undef ORT_API_MANUAL_INIT
#include "onnxruntime_lite_custom_op.h"

// The library is built for any x86-64; its hot loops are built again for AVX2 and AVX-512 and
// the widest the CPU has is picked when the library loads (GCC's function multi-versioning).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define WIDEST_VECTORS __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define AVX512_INTRINSICS 1
#include <immintrin.h>
#else
#define WIDEST_VECTORS
#endif

namespace {

// Sets a custom op's float output shape from inside its shape inference. ONNX Runtime's C++
// wrapper (ShapeInferContext::SetOutputShape) writes a symbolic dimension as -2, which its C API
// refuses (it wants -1 beside the symbol's name), so the C API is called directly.
using Shape = Ort::ShapeInferContext::Shape;

OrtStatus* SetOutputShape(OrtShapeInferContext* context, const Shape& shape) {
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

// ⌊a / b⌋ for b > 0.
int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Float buffers that start on a cache line: a 64-byte vector load or store across two lines costs
// two, and glibc's malloc puts large blocks 16 bytes past a line's start (tcmalloc happens not to).
// A buffer sized without a value is left unwritten (every user writes it before reading): zeroing a
// transformed filter first was a tenth of making it. Sized with a value (0.0f), it is filled.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0)
      ::new (static_cast<void*>(p)) U;
    else
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
using FloatBuffer = std::vector<float, CacheLineAllocator<float>>;

// An attribute's value, or fallback where it is absent or not of this type.
template <typename T>
T Optional(const Ort::ConstKernelInfo& attributes, const char* name, T fallback) {
  try {
    return attributes.GetAttribute<T>(name);
  } catch (const Ort::Exception&) {
    return fallback;
  }
}

// An optional input that is given and not empty: ONNX Runtime's lite kernels read every input up
// to the last given, so a node leaves out a middle one (B, R) as a tensor of no elements.
const Ort::Custom::Tensor<float>* Given(std::optional<const Ort::Custom::Tensor<float>*> input) {
  const Ort::Custom::Tensor<float>* tensor = input.value_or(nullptr);
  return tensor && tensor->NumberOfElement() > 0 ? tensor : nullptr;
}

// A rectifier's backward fused into a kernel of ours (attributes rectify and upper): for the
// rectifier's output y = clamp(·, 0, upper), each gradient cell where 0 < y < upper (its positive
// part for rectify = 2, guided backprop), else 0, as libtorch's relu and hardtanh backward gate it.
struct RectifierGate {
  int64_t rectify = 0; // 0: none, 1: the gradient's gate, 2: guided backprop's
  float upper = std::numeric_limits<float>::infinity();

  void Read(const Ort::ConstKernelInfo& attributes) {
    rectify = Optional<int64_t>(attributes, "rectify", 0);
    upper = Optional<float>(attributes, "upper", std::numeric_limits<float>::infinity());
  }
  bool Valid() const { return rectify >= 0 && rectify <= 2 && upper > 0; }
  static constexpr const char* Requirement = "rectify must be 0, 1 or 2 and upper above 0";

  // Whether a kernel's gate input G is given exactly where rectify asks for one.
  bool Fits(const Ort::Custom::Tensor<float>* gate) const { return (gate != nullptr) == (rectify != 0); }
  static constexpr const char* GateRequirement = "a gate G takes rectify 1 or 2, and rectify 1 or 2 a gate";

  static bool Open(float y, float upper) { return (y > 0.0f) & (y < upper); }

  // g[i] gated by y[i], i < count: a loop of selects for each mode, so that each is vectorised
  // (a branch per cell is mispredicted on the half of a rectifier's outputs that are 0).
  __attribute__((always_inline)) inline void Apply(const float* __restrict y, float* __restrict g, int64_t count) const {
    const float top = upper; // a local: stores to g could change a member for all the compiler knows
    if (rectify == 2)
      for (int64_t i = 0; i < count; ++i) {
        const float kept = std::max(g[i], 0.0f);
        g[i] = Open(y[i], top) ? kept : 0.0f;
      }
    else
      for (int64_t i = 0; i < count; ++i) {
        const float kept = g[i];
        g[i] = Open(y[i], top) ? kept : 0.0f;
      }
  }
};

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

  // Whether this window is valid over a 2-D `image` of positive sizes and fits it along both
  // axes; `blocks` gets the windows along each.
  bool Blocks(const std::vector<int64_t>& image, int64_t blocks[2]) const {
    bool valid = image.size() == 2 && Valid();
    for (size_t d = 0; valid && d < 2; ++d) valid = image[d] > 0 && (blocks[d] = Count(d, image[d])) > 0;
    return valid;
  }
};

// Task `index` of those that split planes of `height` rows each into bands of `band` rows (the
// scatters' tasks, which each write their own rows): its plane and its rows [y0, y1).
struct RowBand {
  int64_t plane, y0, y1;
  RowBand(size_t index, int64_t height, int64_t band) {
    const int64_t bands = CeilDiv(height, band);
    plane = static_cast<int64_t>(index) / bands;
    y0 = static_cast<int64_t>(index) % bands * band;
    y1 = std::min(height, y0 + band);
  }

  // The tasks that split `planes` such planes.
  static size_t Tasks(int64_t planes, int64_t height, int64_t band) { return static_cast<size_t>(planes * CeilDiv(height, band)); }
};

struct MaxPoolGrad {
  MaxPoolGrad(const OrtApi* api, const OrtKernelInfo* info) : api_(api) {
    try {
      Ort::ConstKernelInfo attributes(info);
      window_.Read(attributes, "kernel_shape");
      gate_.Read(attributes);
    } catch (const std::exception& e) {
      error_ = std::string("MaxPoolGrad: ") + e.what();
    }
    if (error_.empty() && !gate_.Valid()) error_ = std::string("MaxPoolGrad: ") + RectifierGate::Requirement;
    if (error_.empty() && !window_.Valid()) error_ = "MaxPoolGrad: needs 2-D kernel_shape, strides and dilations (> 0) and four pads (>= 0)";
  }

  // dX has X's shape.
  static bool OutputShape(Ort::ShapeInferContext& context, Shape& shape) {
    if (context.GetInputCount() != 2) return false;
    shape = context.GetInputShape(0);
    return true;
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
      Ort::Status status(api_->KernelContext_ParallelFor(context, &Plane, static_cast<size_t>(xs[0] * xs[1]), 0, &job));
      if (status.IsOK() && job.failed) return Ort::Status("MaxPoolGrad: out of memory", ORT_FAIL);
      return status;
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
    std::atomic<bool> failed{false};
  };

  // One channel of one sample: each window's gradient to its first maximum, then the gate.
  static void Plane(void* data, size_t plane) {
    Job& job = *static_cast<Job*>(data);
    const MaxPoolGrad& op = *job.op;
    const int64_t area = job.height * job.width;
    const float* x = job.x + plane * area;
    const float* dy = job.dy + plane * job.rows * job.columns;
    float* dx = job.dx + plane * area;
    std::memset(dx, 0, sizeof(float) * area);
    // The separable search at column strides 1 and 2 (a reach and left pad of at most Reach,
    // 32-bit cell indices), else one window at a time.
    const Window& w = op.window_;
    const bool near = w.kernel[1] - 1 <= Reach && w.dilations[1] <= Reach && (w.kernel[1] - 1) * w.dilations[1] <= Reach && w.pads[1] <= Reach;
    const bool separable = near && area <= std::numeric_limits<int32_t>::max();
    if (separable && w.strides[1] == 2) Separable<2>(job, x, dy, dx);
    else if (separable && w.strides[1] == 1) Separable<1>(job, x, dy, dx);
    else Windows(job, x, dy, dx);
    if (op.gate_.rectify != 0) Gate(op.gate_, x, dx, area);
  }

  // The rectifier's backward on one plane. Vectorised selects (the library is built with -O3): at
  // -O2 g++ left a branch per cell, mispredicted on the half of a rectifier's outputs that are 0
  // (ResNet-18's stem: 3.3 ms against 1.1 at -O3).
  WIDEST_VECTORS
  static void Gate(const RectifierGate& gate, const float* __restrict x, float* __restrict dx, int64_t area) { gate.Apply(x, dx, area); }

  // The columns a window reaches past its first, and the left pad, up to which the separable
  // search runs (its row buffers grow with them).
  static constexpr int64_t Reach = 64;

  // For each j < n where value[j] > best[j] (strictly: an earlier maximum keeps its place):
  // best[j] = value[j] and best_cell[j] = base + (cells ? cells[j] : j·step). Eight lanes at a time
  // in GCC's vector types, so that each clone of the caller gets its ISA's compares and blends:
  // written as plain selects, GCC made them masked stores (vmaskmovps), microcoded on AMD (with
  // the one-loop split below and the vectorised gate: ResNet-18's stem pool 1.96 → 0.85 ms on one
  // thread, a family-25 EPYC). Inlined, so that it is built for each clone of its caller.
  __attribute__((always_inline)) static inline void KeepGreater(const float* value, float* best, int32_t* best_cell, int64_t n, int32_t base, const int32_t* cells, int32_t step) {
    typedef float Floats __attribute__((vector_size(32)));
    typedef int32_t Ints __attribute__((vector_size(32)));
    const Ints lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      Floats v, b;
      Ints c, k;
      std::memcpy(&v, value + j, sizeof v);
      std::memcpy(&b, best + j, sizeof b);
      std::memcpy(&k, best_cell + j, sizeof k);
      if (cells) std::memcpy(&c, cells + j, sizeof c);
      else c = (lanes + static_cast<int32_t>(j)) * step;
      const Ints greater = v > b;
      b = greater ? v : b;
      k = greater ? c + base : k;
      std::memcpy(best + j, &b, sizeof b);
      std::memcpy(best_cell + j, &k, sizeof k);
    }
    for (; j < n; ++j)
      if (value[j] > best[j]) best[j] = value[j], best_cell[j] = base + (cells ? cells[j] : static_cast<int32_t>(j) * step);
  }

  // The search in two passes over contiguous memory, where one window at a time is a chain of
  // dependent selects over strided cells (ResNet-18's 3×3/2 pool: 0.8 ms of its backward).
  // Along each row of X, every window's first maximum among its columns: at column stride 2 the
  // row is split by parity, so that tap b of window j is element j + q_b of one half, and all
  // windows compare that tap at once. Then down each window's rows, the first of those maxima.
  // The order is one window's own (row a, then column b; a tie keeps the earlier cell).
  template <int64_t S>
  WIDEST_VECTORS
  static void Separable(Job& job, const float* x, const float* dy, float* dx) {
    const Window& w = job.op->window_;
    const int64_t height = job.height, width = job.width, rows = job.rows, columns = job.columns;
    const int64_t kh = w.kernel[0], kw = w.kernel[1], sh = w.strides[0], dh = w.dilations[0], dw = w.dilations[1];
    const int64_t ph = w.pads[0], pw = w.pads[1];
    constexpr float lowest = std::numeric_limits<float>::lowest();
    // Tap b of window j reads column j·S + off_b (off_b = b·dw − pw): element j + q_b of half
    // off_b − q_b·S, q_b = ⌊off_b / S⌋. Each half is padded with `lowest`, which never wins.
    const int64_t before = -FloorDiv(-pw, S), after = std::max<int64_t>(0, FloorDiv((kw - 1) * dw - pw, S));
    const int64_t span = before + std::max(CeilDiv(width, S), columns + after);
    thread_local FloatBuffer halves, row_maxima, window_maxima;
    thread_local std::vector<int32_t> row_columns, window_cells;
    try {
      halves.resize(static_cast<size_t>(S * span));
      row_maxima.resize(static_cast<size_t>(height * columns));
      row_columns.resize(static_cast<size_t>(height * columns));
      window_maxima.resize(static_cast<size_t>(columns));
      window_cells.resize(static_cast<size_t>(columns));
    } catch (const std::exception&) {
      job.failed = true; // no exception may leave a thread-pool task
      return;
    }
    for (int64_t r = 0; r < height; ++r) {
      const float* __restrict row = x + r * width;
      std::fill(halves.begin(), halves.end(), lowest);
      // All S halves in one loop: GCC loads S vectors of the row and shuffles them apart, where
      // one half at a time is a gather of every S-th cell.
      float* __restrict split = halves.data() + before;
      const int64_t whole = width / S;
      for (int64_t k = 0; k < whole; ++k)
        for (int64_t l = 0; l < S; ++l) split[l * span + k] = row[k * S + l];
      for (int64_t l = 0; whole * S + l < width; ++l) split[l * span + whole] = row[whole * S + l];
      float* __restrict most = row_maxima.data() + r * columns;
      int32_t* __restrict at = row_columns.data() + r * columns;
      std::fill(most, most + columns, lowest);
      std::fill(at, at + columns, -1);
      for (int64_t b = 0; b < kw; ++b) {
        const int64_t off = b * dw - pw, q = FloorDiv(off, S);
        const float* __restrict tap = halves.data() + (off - q * S) * span + before + q;
        KeepGreater(tap, most, at, columns, static_cast<int32_t>(off), nullptr, static_cast<int32_t>(S));
      }
    }
    float* __restrict top_value = window_maxima.data();
    int32_t* __restrict top_cell = window_cells.data();
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t top = i * sh - ph;
      const int64_t a0 = CeilDiv(-top, dh), a1 = std::min(kh, CeilDiv(height - top, dh));
      std::fill(top_value, top_value + columns, lowest);
      std::fill(top_cell, top_cell + columns, -1);
      for (int64_t a = a0; a < a1; ++a) {
        const int64_t r = top + a * dh;
        const float* __restrict most = row_maxima.data() + r * columns;
        const int32_t* __restrict at = row_columns.data() + r * columns;
        const int32_t start = static_cast<int32_t>(r * width);
        KeepGreater(most, top_value, top_cell, columns, start, at, 0);
      }
      const float* gradient = dy + i * columns;
      for (int64_t j = 0; j < columns; ++j)
        if (top_cell[j] >= 0) dx[top_cell[j]] += gradient[j];
    }
  }

  // One window at a time, for any attributes.
  static void Windows(Job& job, const float* x, const float* dy, float* dx) {
    const Window& w = job.op->window_;
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
  }

  const OrtApi* api_;
  Window window_;
  RectifierGate gate_;
  std::string error_;
};

struct Col2Im {
  Col2Im(const OrtApi* api, const OrtKernelInfo* info, const char* name = "Col2Im") : api_(api), name_(name) {
    try {
      Ort::ConstKernelInfo attributes(info);
      image_ = attributes.GetAttributes<int64_t>("image_shape");
      window_.Read(attributes, "block_shape");
      gate_.Read(attributes);
    } catch (const std::exception& e) {
      error_ = name_ + ": " + e.what();
    }
    const bool valid = window_.Blocks(image_, blocks_) && !__builtin_mul_overflow(window_.kernel[0], window_.kernel[1], &cells_);
    if (error_.empty() && !valid) error_ = name_ + ": needs 2-D image_shape, block_shape, strides and dilations (> 0), four pads (>= 0) and a block that fits";
    if (error_.empty() && !gate_.Valid()) error_ = name_ + ": " + RectifierGate::Requirement;
  }

  // [N, C, H, W] with the columns' own N.
  static bool OutputShape(Ort::ShapeInferContext& context, Shape& shape) {
    const auto image = context.GetAttrInts("image_shape");
    const auto block = context.GetAttrInts("block_shape");
    const auto& cols = context.GetInputShape(0);
    int64_t cells = 0;
    if (image.size() != 2 || block.size() != 2 || cols.size() != 3 || !cols[1].IsInt() || image[0] <= 0 || image[1] <= 0 ||
        block[0] <= 0 || block[1] <= 0 || __builtin_mul_overflow(block[0], block[1], &cells) || cols[1].AsInt() % cells != 0)
      return false;
    shape = {cols[0], cols[1].AsInt() / cells, image[0], image[1]};
    return true;
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& cols, std::optional<const Ort::Custom::Tensor<float>*> r,
                      std::optional<const Ort::Custom::Tensor<float>*> g, Ort::Custom::Tensor<float>& image) {
    try {
      if (!error_.empty()) return Ort::Status(error_.c_str(), ORT_INVALID_ARGUMENT);
      const auto& cs = cols.Shape();
      if (cs.size() != 3 || cs[1] % cells_ != 0 || cs[2] % blocks_[0] != 0 || cs[2] / blocks_[0] != blocks_[1])
        return Ort::Status("Col2Im: cols must be [N, C * kh * kw, L] with L the image's blocks", ORT_INVALID_ARGUMENT);
      const int64_t channels = cs[1] / cells_;
      Job job{cols.Data(), nullptr, channels};
      return Scatter(context, job, {cs[0], channels, image_[0], image_[1]}, r, g, image);
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }

 protected:
  struct Job {
    const float* cols;    // plain: [N, C·kh·kw, L]; weighted: the gradient [N, C, L], each tap's column a multiple of it
    const float* weights; // null, or [C, kh·kw]: column (c, tap) = weights[c, tap] · cols[n, c]
    int64_t channels;
    float* image = nullptr;
    const Col2Im* op = nullptr;
    // Added as each row is written: a residual (the other gradients of the same value), then the
    // gate of the rectifier whose output is gate, as WinogradConv's.
    const float* residual = nullptr;
    const float* gate = nullptr;
    std::atomic<bool> failed{false};
  };

  // The image of the given shape [N, C, H, W] from job's columns, plus R and gated by G where given.
  Ort::Status Scatter(OrtKernelContext* context, Job& job, const std::vector<int64_t>& shape, std::optional<const Ort::Custom::Tensor<float>*> r,
                      std::optional<const Ort::Custom::Tensor<float>*> g, Ort::Custom::Tensor<float>& image) const {
    const Ort::Custom::Tensor<float>* residual = Given(r);
    const Ort::Custom::Tensor<float>* gate = g.value_or(nullptr); // the last input: never left out as empty
    if (!gate_.Fits(gate)) return Ort::Status((name_ + ": " + RectifierGate::GateRequirement).c_str(), ORT_INVALID_ARGUMENT);
    if ((residual && residual->Shape() != shape) || (gate && gate->Shape() != shape))
      return Ort::Status((name_ + ": R and G must be the image's shape [N, C, H, W]").c_str(), ORT_INVALID_ARGUMENT);
    job.image = image.Allocate(shape);
    job.op = this;
    job.residual = residual ? residual->Data() : nullptr;
    job.gate = gate ? gate->Data() : nullptr;
    const size_t tasks = RowBand::Tasks(shape[0] * job.channels, image_[0], BandOf(image_[1]));
    Ort::Status status(api_->KernelContext_ParallelFor(context, &Rows, tasks, 0, &job));
    if (status.IsOK() && job.failed) return Ort::Status((name_ + ": out of memory").c_str(), ORT_FAIL);
    return status;
  }

  // Rows [y0, y0 + band) of one channel of one sample: the sums of the cells that land on them,
  // gathered so that each thread writes its own rows. Block row i reaches image row y through tap
  // a where i·sh − ph + a·dh = y. Along a row, cell b of block j lands at x = j·sw + off
  // (off = b·dw − pw): per residue r of x modulo sw those are contiguous, so the sums run as vector
  // adds into one buffer per residue, interleaved into the rows at the end.
  // At least 8 rows and ~2k cells a task: a task's own set-up outweighs the adds of a few short rows
  // (MobileNetV2's 14×14 planes).
  static int64_t BandOf(int64_t width) { return std::max<int64_t>(8, CeilDiv(2048, width)); }

  WIDEST_VECTORS
  static void Rows(void* data, size_t index) {
    Job& job = *static_cast<Job*>(data);
    const Col2Im& op = *job.op;
    const Window& w = op.window_;
    const int64_t height = op.image_[0], width = op.image_[1], rows = op.blocks_[0], columns = op.blocks_[1];
    const int64_t kh = w.kernel[0], kw = w.kernel[1], sh = w.strides[0], sw = w.strides[1];
    const int64_t dh = w.dilations[0], dw = w.dilations[1], ph = w.pads[0], pw = w.pads[1];
    const RowBand task(index, height, BandOf(width));
    const int64_t plane = task.plane, y0 = task.y0, y1 = task.y1;
    // Sample and channel: kh·kw rows of L, or (weighted) one row of L that every tap scales.
    const int64_t taps = job.weights ? 0 : rows * columns;
    const float* cols = job.cols + plane * (job.weights ? 1 : kh * kw) * rows * columns;
    const float* weights = job.weights ? job.weights + plane % job.channels * kh * kw : nullptr;
    const int64_t residues = std::min(sw, width), stride = CeilDiv(width, sw); // residue r holds x = k·sw + r
    const int64_t line = residues * stride;                                     // one image row, by residue
    thread_local FloatBuffer sums;
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
        const float* tap = cols + (a * kw + b) * taps + j0;
        const float weight = weights ? weights[a * kw + b] : 1.0f; // 1·x is exact
        for (int64_t y = y0; y < y1; ++y) {
          const int64_t top = y + ph - a * dh; // = i·sh
          if (top < 0 || top % sh != 0 || top / sh >= rows) continue;
          const float* __restrict from = tap + top / sh * columns;
          float* __restrict to = sums.data() + (y - y0) * line + r * stride + q + j0;
          for (int64_t j = 0; j < n; ++j) to[j] += weight * from[j];
        }
      }
    }
    for (int64_t y = y0; y < y1; ++y) {
      const float* __restrict row = sums.data() + (y - y0) * line;
      float* __restrict out = job.image + (plane * height + y) * width;
      if (residues == 2) { // stride 2, the common case, as vector unpacks
        const float* __restrict odd = row + stride;
        const int64_t pairs = width / 2;
        for (int64_t k = 0; k < pairs; ++k) {
          out[2 * k] = row[k];
          out[2 * k + 1] = odd[k];
        }
        if (width % 2) out[width - 1] = row[pairs];
        continue;
      }
      for (int64_t r = 0; r < residues; ++r)
        for (int64_t k = 0, count = CeilDiv(width - r, sw); k < count; ++k) out[k * sw + r] = row[r * stride + k];
    }
    const int64_t at = (plane * height + y0) * width, cells = (y1 - y0) * width;
    if (job.residual) {
      const float* __restrict residual = job.residual + at;
      float* __restrict out = job.image + at;
      for (int64_t i = 0; i < cells; ++i) out[i] += residual[i];
    }
    if (job.gate) op.gate_.Apply(job.gate + at, job.image + at, cells);
  }

  const OrtApi* api_;
  std::string name_;
  std::vector<int64_t> image_;
  Window window_;
  int64_t cells_ = 0, blocks_[2] = {0, 0};
  RectifierGate gate_;
  std::string error_;
};

// DepthwiseCol2Im(dY [N, C, oh, ow], W [C, 1, kh, kw]) -> dX [N, C, H, W]: the input gradient of a
// depthwise convolution (group = C, one channel a group) with W, as Col2Im of the columns
// W[c, tap]·dY[n, c], which are never written. ONNX Runtime's ConvTranspose runs one small
// product and a scalar scatter per channel (MobileNetV2's four strided ones: 2.3 ms, 1.6 here).
struct DepthwiseCol2Im : Col2Im {
  DepthwiseCol2Im(const OrtApi* api, const OrtKernelInfo* info) : Col2Im(api, info, "DepthwiseCol2Im") {}

  // [N, C, H, W]: dY's N and C, image_shape's H and W.
  static bool OutputShape(Ort::ShapeInferContext& context, Shape& shape) {
    const auto image = context.GetAttrInts("image_shape");
    const auto& dy = context.GetInputShape(0);
    if (image.size() != 2 || dy.size() != 4 || image[0] <= 0 || image[1] <= 0) return false;
    shape = {dy[0], dy[1], image[0], image[1]};
    return true;
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& dy, const Ort::Custom::Tensor<float>& w,
                      std::optional<const Ort::Custom::Tensor<float>*> r, std::optional<const Ort::Custom::Tensor<float>*> g,
                      Ort::Custom::Tensor<float>& dx) {
    try {
      if (!error_.empty()) return Ort::Status(error_.c_str(), ORT_INVALID_ARGUMENT);
      const auto& ys = dy.Shape();
      const auto& ws = w.Shape();
      if (ys.size() != 4 || ys[2] != blocks_[0] || ys[3] != blocks_[1] || ws.size() != 4 || ws[0] != ys[1] || ws[1] != 1 ||
          ws[2] != window_.kernel[0] || ws[3] != window_.kernel[1])
        return Ort::Status("DepthwiseCol2Im: dY must be [N, C, oh, ow] with the image's blocks and W [C, 1, kh, kw]", ORT_INVALID_ARGUMENT);
      Job job{dy.Data(), w.Data(), ys[1]};
      return Scatter(context, job, {ys[0], ys[1], image_[0], image_[1]}, r, g, dx);
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }
};

// SparseConvTranspose(dY [N, K, oh, ow], W [K, C, kh, kw]) -> dX [N, C, H, W]: a convolution's
// input gradient (the transposed convolution of dY with the convolution's own kernel W, one
// group; Col2Im's attributes) as a scatter of dY's non-zero cells only, each adding
// dY[n, k, i, j]·W[k] over its window. Where dY is a max pool's gradient with strides of 2 × 2 or
// more, at most a quarter of its cells are non-zero (in a guided pass about an eighth): ResNet's
// 7×7/2 stem, where MatMul(Wᵀ, dY) and Col2Im multiply and add every cell.
struct SparseConvTranspose {
  SparseConvTranspose(const OrtApi* api, const OrtKernelInfo* info) : api_(api) {
    try {
      Ort::ConstKernelInfo attributes(info);
      image_ = attributes.GetAttributes<int64_t>("image_shape");
      window_.Read(attributes, "block_shape");
    } catch (const std::exception& e) {
      error_ = std::string("SparseConvTranspose: ") + e.what();
    }
    bool valid = window_.Blocks(image_, blocks_);
    // A tap row's run in the scatter's buffer ((kw − 1)·dw + 1 cells of C) is bounded here, and C·run below.
    valid = valid && !__builtin_mul_overflow(window_.kernel[1] - 1, window_.dilations[1], &span_) && span_ < MaxRun;
    span_ += 1;
    if (error_.empty() && !valid)
      error_ = "SparseConvTranspose: needs 2-D image_shape, block_shape, strides and dilations (> 0), four pads (>= 0), a block that fits and rows of at most 2^20 cells";
  }

  // [N, C, H, W]: dY's N, W's C, image_shape's H and W.
  static bool OutputShape(Ort::ShapeInferContext& context, Shape& shape) {
    const auto image = context.GetAttrInts("image_shape");
    const auto& dy = context.GetInputShape(0);
    const auto& w = context.GetInputShape(1);
    if (image.size() != 2 || dy.size() != 4 || w.size() != 4 || !w[1].IsInt() || image[0] <= 0 || image[1] <= 0) return false;
    shape = {dy[0], w[1], image[0], image[1]};
    return true;
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& dy, const Ort::Custom::Tensor<float>& w, Ort::Custom::Tensor<float>& dx) {
    try {
      if (!error_.empty()) return Ort::Status(error_.c_str(), ORT_INVALID_ARGUMENT);
      const auto& ys = dy.Shape();
      const auto& ws = w.Shape();
      if (ys.size() != 4 || ys[2] != blocks_[0] || ys[3] != blocks_[1] || ws.size() != 4 || ws[0] != ys[1] || ws[1] < 1 ||
          ws[2] != window_.kernel[0] || ws[3] != window_.kernel[1])
        return Ort::Status("SparseConvTranspose: dY must be [N, K, oh, ow] with the image's blocks and W [K, C, kh, kw]", ORT_INVALID_ARGUMENT);
      Job job{dy.Data(), nullptr, ys[1], ws[1], 0, 0, nullptr, this};
      // Tap row (k, a) as one run of the buffer's layout (cell x, then channel c), zeros between
      // dilated taps, padded to whole vectors: a non-zero cell's row is then vector multiply-adds.
      if (__builtin_mul_overflow(span_, job.channels, &job.run) || job.run > MaxRun)
        return Ort::Status("SparseConvTranspose: a tap row of C channels must be at most 2^20 values", ORT_INVALID_ARGUMENT);
      job.run = CeilDiv(job.run, Lanes) * Lanes;
      job.cells = CeilDiv(job.run, job.channels);
      const int64_t kh = window_.kernel[0], kw = window_.kernel[1], dw = window_.dilations[1];
      FloatBuffer runs(static_cast<size_t>(job.kernels * kh * job.run), 0.0f);
      const float* weights = w.Data();
      for (int64_t k = 0; k < job.kernels; ++k)
        for (int64_t c = 0; c < job.channels; ++c)
          for (int64_t a = 0; a < kh; ++a)
            for (int64_t b = 0; b < kw; ++b)
              runs[static_cast<size_t>((k * kh + a) * job.run + b * dw * job.channels + c)] = weights[((k * job.channels + c) * kh + a) * kw + b];
      job.runs = runs.data();
      job.dx = dx.Allocate({ys[0], job.channels, image_[0], image_[1]});
      const size_t tasks = RowBand::Tasks(ys[0], image_[0], BandOf(image_[1]));
      Ort::Status status(api_->KernelContext_ParallelFor(context, &Band, tasks, 0, &job));
      if (status.IsOK() && job.failed) return Ort::Status("SparseConvTranspose: out of memory", ORT_FAIL);
      return status;
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }

 private:
  static constexpr int64_t MaxRun = int64_t{1} << 20;
  static constexpr int64_t Lanes = 8;

  struct Job {
    const float* dy;
    float* dx;
    int64_t kernels, channels;
    int64_t run, cells; // a tap row's floats (whole vectors) and the cells they cover
    const float* runs;  // [K, kh, run]
    const SparseConvTranspose* op;
    std::atomic<bool> failed{false};
  };

  // Rows a task writes: at least 16 and ~4k cells, so that the rows of dY whose windows reach
  // two bands ((kh − 1)·dh / sh of them) are read again seldom.
  static int64_t BandOf(int64_t width) { return std::max<int64_t>(16, CeilDiv(4096, width)); }

  typedef float Floats __attribute__((vector_size(Lanes * sizeof(float)), aligned(sizeof(float))));
  typedef uint32_t Bits __attribute__((vector_size(Lanes * sizeof(uint32_t)), aligned(sizeof(uint32_t))));

  // Rows [y0, y1) of one sample. For each cell (i, j) of dY whose window reaches them, the
  // non-zero channels k are listed (a bit per channel, row by row of dY), each tap row a of
  // the window is summed over them in registers, Σ_k dY[n, k, i, j]·W[k, ·, a, ·], and added once
  // into a buffer of the band's rows (cell x, then channel c, a run's width of margin on each side
  // so that no run is cut), which is then written out channel by channel. Adding each non-zero
  // cell's weights into memory instead took twice as long (ResNet-18's stem, one thread: 2.3–2.6
  // against 1.25 ms).
  WIDEST_VECTORS
  static void Band(void* data, size_t index) {
    Job& job = *static_cast<Job*>(data);
    const SparseConvTranspose& op = *job.op;
    const Window& w = op.window_;
    const int64_t height = op.image_[0], width = op.image_[1], rows = op.blocks_[0], columns = op.blocks_[1];
    const int64_t kh = w.kernel[0], sh = w.strides[0], sw = w.strides[1], dh = w.dilations[0], ph = w.pads[0], pw = w.pads[1];
    const RowBand task(index, height, BandOf(width));
    const int64_t n = task.plane, y0 = task.y0, y1 = task.y1;
    const int64_t kernels = job.kernels, channels = job.channels, run = job.run, margin = job.cells * channels;
    const int64_t line = (width + 2 * job.cells) * channels, area = rows * columns;
    thread_local FloatBuffer sums, values;
    thread_local std::vector<int32_t> listed;
    thread_local std::vector<int64_t> count;
    thread_local std::vector<uint32_t> found; // a Bits per eight cells
    try {
      sums.assign(static_cast<size_t>((y1 - y0) * line), 0.0f);
      listed.resize(static_cast<size_t>(columns * kernels));
      values.resize(static_cast<size_t>(columns * kernels));
      count.resize(static_cast<size_t>(columns));
      found.resize(static_cast<size_t>(CeilDiv(columns, Lanes) * Lanes));
    } catch (const std::exception&) {
      job.failed = true; // no exception may leave a thread-pool task
      return;
    }
    const float* sample = job.dy + n * kernels * area;
    // Block rows i whose taps reach [y0, y1): y = i·sh − ph + a·dh for some tap a.
    const int64_t i0 = CeilDiv(y0 + ph - (kh - 1) * dh, sh), i1 = std::min(rows, FloorDiv(y1 - 1 + ph, sh) + 1);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t top = i * sh - ph;
      const int64_t a0 = CeilDiv(y0 - top, dh), a1 = std::min(kh, CeilDiv(y1 - top, dh));
      if (a0 >= a1) continue;
      // The row's non-zero channels per cell: a bit per channel of a group of 32, each channel's
      // row read whole (eight cells at a time across the channels read a page per channel: 10%
      // slower), then listed cell by cell.
      const int64_t chunks = CeilDiv(columns, Lanes);
      std::fill(count.begin(), count.begin() + columns, 0);
      for (int64_t k0 = 0; k0 < kernels; k0 += 32) {
        std::fill(found.begin(), found.begin() + chunks * Lanes, 0u);
        for (int64_t k = k0; k < std::min(kernels, k0 + 32); ++k) {
          const float* cells = sample + k * area + i * columns;
          const Bits bit = Bits{} + (1u << (k - k0));
          int64_t c = 0;
          for (; c < columns / Lanes; ++c) BitsAt(&found[c * Lanes]) |= (Load(cells + c * Lanes) != 0.0f) & bit; // NaN counts: it is not zero
          if (c < chunks) {
            Floats v = {};
            for (int64_t l = 0; l < columns - c * Lanes; ++l) v[l] = cells[c * Lanes + l];
            BitsAt(&found[c * Lanes]) |= (v != 0.0f) & bit;
          }
        }
        for (int64_t j = 0; j < columns; ++j)
          for (uint32_t bits = found[j]; bits; bits &= bits - 1) {
            const int64_t k = k0 + __builtin_ctz(bits);
            listed[j * kernels + count[j]] = static_cast<int32_t>(k);
            values[j * kernels + count[j]++] = sample[k * area + i * columns + j];
          }
      }
      for (int64_t j = 0; j < columns; ++j) {
        const int64_t left = j * sw - pw;
        if (count[j] == 0 || left >= width || left + job.cells <= 0) continue; // nothing, or all of it in the pads
        float* at = sums.data() + margin + left * channels + (top + a0 * dh - y0) * line;
        AddWindow(at, dh * line, job.runs, kh, a0, a1, run, listed.data() + j * kernels, values.data() + j * kernels, count[j]);
      }
    }
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t c = 0; c < channels; ++c) {
        const float* __restrict from = sums.data() + (y - y0) * line + margin + c;
        float* __restrict out = job.dx + ((n * channels + c) * height + y) * width;
        for (int64_t x = 0; x < width; ++x) out[x] = from[x * channels];
      }
  }

  // Tap rows [a0, a1) of one cell's window, at `to` (row a0; rows dh·line apart): each row a gets
  // Σ_t g[t]·weights[k[t], a] over the cell's non-zero channels, four rows and up to four vectors
  // of a row at a time.
  __attribute__((always_inline)) static inline void AddWindow(float* to, int64_t apart, const float* weights, int64_t kh, int64_t a0, int64_t a1,
                                                              int64_t run, const int32_t* k, const float* g, int64_t count) {
    for (int64_t a = a0; a < a1; a += 4)
      for (int64_t q = 0; q < run; q += 4 * Lanes) {
        float* rows = to + (a - a0) * apart + q;
        const float* taps = weights + a * run + q;
        const int64_t n = std::min<int64_t>(4, a1 - a);
        switch (std::min<int64_t>(4, (run - q) / Lanes)) {
          case 4: AddRows<4>(rows, apart, taps, kh * run, run, n, k, g, count); break;
          case 3: AddRows<3>(rows, apart, taps, kh * run, run, n, k, g, count); break;
          case 2: AddRows<2>(rows, apart, taps, kh * run, run, n, k, g, count); break;
          default: AddRows<1>(rows, apart, taps, kh * run, run, n, k, g, count); break;
        }
      }
  }

  // Rows u < n (n <= 4), R vectors of each: to[u·apart, + R·8) += Σ_t g[t]·taps[k[t]·stride + u·run, + R·8),
  // the 4·R sums in registers, independent of each other so that as many multiply-adds are in
  // flight (GCC's vector type, so that each clone of the caller gets its ISA's multiply-adds).
  template <int R>
  __attribute__((always_inline)) static inline void AddRows(float* to, int64_t apart, const float* taps, int64_t stride, int64_t run, int64_t n,
                                                            const int32_t* k, const float* g, int64_t count) {
    Floats s[4][R] = {};
    for (int64_t t = 0; t < count; ++t) {
      const float* from = taps + k[t] * stride;
      for (int u = 0; u < 4; ++u)
        if (u < n)
          for (int r = 0; r < R; ++r) s[u][r] += g[t] * Load(from + u * run + r * Lanes);
    }
    for (int u = 0; u < 4; ++u)
      if (u < n)
        for (int r = 0; r < R; ++r) Store(to + u * apart + r * Lanes) += s[u][r];
  }

  // Eight floats at p as one vector (by reference: a vector passed by value differs between the clones' ABIs).
  static const Floats& Load(const float* p) { return *reinterpret_cast<const Floats*>(p); }
  static Floats& Store(float* p) { return *reinterpret_cast<Floats*>(p); }
  static Bits& BitsAt(uint32_t* p) { return *reinterpret_cast<Bits*>(p); }

  const OrtApi* api_;
  std::vector<int64_t> image_;
  Window window_;
  int64_t blocks_[2] = {0, 0}, span_ = 0;
  std::string error_;
};

// SampleSum(X [N, ...]) -> Y [1, ...]: X summed over its first axis, where a backward sums a batch's
// gradients before its last linear ops (BackwardGraph.SampleSum.cs). ONNX Runtime's ReduceSum adds
// one whole sample into the output at a time, so each thread's share of the output leaves the cache
// between samples (ResNet-18's stem gradient, 16 samples: 12-14 ms); here a task sums a block of the
// output that stays in the first-level cache over every sample.
struct SampleSum {
  SampleSum(const OrtApi* api, const OrtKernelInfo*) : api_(api) {}

  // X's shape with a first axis of 1.
  static bool OutputShape(Ort::ShapeInferContext& context, Shape& shape) {
    if (context.GetInputCount() != 1) return false;
    shape = context.GetInputShape(0);
    if (shape.empty()) return false;
    shape[0] = Ort::ShapeInferContext::SymbolicInteger(int64_t{1});
    return true;
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& x, Ort::Custom::Tensor<float>& y) {
    try {
      std::vector<int64_t> shape = x.Shape();
      if (shape.empty() || shape[0] < 1) return Ort::Status("SampleSum: X needs a first axis of at least one", ORT_INVALID_ARGUMENT);
      Job job{x.Data(), nullptr, shape[0], 1};
      for (size_t d = 1; d < shape.size(); ++d) job.size *= shape[d]; // X's own elements: the product fits
      shape[0] = 1;
      job.y = y.Allocate(shape);
      return Ort::Status(api_->KernelContext_ParallelFor(context, &Block, static_cast<size_t>(CeilDiv(job.size, Width)), 0, &job));
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }

 private:
  struct Job {
    const float* x;
    float* y;
    int64_t samples, size; // size: the elements of one sample
  };

  // The output's elements a task sums: 16 KB.
  static constexpr int64_t Width = 4096;

  WIDEST_VECTORS
  static void Block(void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const int64_t begin = static_cast<int64_t>(index) * Width, n = std::min(Width, job.size - begin);
    float* __restrict out = job.y + begin;
    std::memcpy(out, job.x + begin, static_cast<size_t>(n) * sizeof(float));
    for (int64_t s = 1; s < job.samples; ++s) {
      const float* __restrict row = job.x + s * job.size + begin;
      for (int64_t j = 0; j < n; ++j) out[j] += row[j];
    }
  }

  const OrtApi* api_;
};

// Whether the CPU runs the library's AVX-512 clone (GCC picks it where all of x86-64-v4's
// extensions are there), where WideProducts compiles to 16-float registers; elsewhere its code
// is built but never run.
bool WideVectors() {
  static const bool wide = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
  return wide;
}

// Winograd's F(M×M, 3×3), M = 2 or 4, and the stride-2 forms (Sampling): the transforms and the
// tasks that run them. A tile is M×M outputs from a T×T patch of the input (T = M + 2 at stride
// 1), whose transform has E = P² elements (P = T at stride 1, 5 for the stride-2 forms); a block is
// 16 tiles, one vector's lanes. F(2×2) takes 16 products where a direct convolution
// takes 36 multiply-adds, F(4×4) 36 where it takes 144; F(4×4)'s transforms cost more and its
// sums are rounded more (its transform's coefficients reach 8, against 1). F(4×4)'s points are 0,
// ±1, 1/2, -2 and ∞ (Barabasz et al., 2020, found such points round less than Lavin's ±2), each
// transform scaled to small integers; its sums round 2-3× less than with Lavin's (NativeOpsTests'
// largest error against float64 at 1,100 channels: 1.05e-5 against 2.7e-5 with 16-float vectors,
// 1.8e-5 against 5.2e-5 with 8-float ones).
// How a convolution's output cells lie over its input's: a stride-1 convolution's over the same
// cells; a stride-2 one's over every other cell (Down); its transpose's, a stride-2 convolution's
// input gradient, two for each (Up).
enum class Sampling { Same, Down, Up };

// The stride-2 forms (Down with M = 2, Up with M = 4) take the separable five-product algorithm
// instead of Winograd's: along an axis, two outputs of a stride-2 convolution from the cells c0..c4
// under them, by taps g0..g2, are e0 + e1 + e3 and e1 + e2 + e4 of the products e0 = (c0 - c2)·g0,
// e1 = c2·(g0 + g2), e2 = (c4 - c2)·g2, e3 = c1·g1, e4 = c3·g1; four cells of its transpose from
// the cells d0..d2 over them are e3, e0 + e1, e4 and e1 + e2 of e0 = (d0 - d1)·g2, e1 = d1·(g0 +
// g2), e2 = (d2 - d1)·g0, e3 = d0·g1, e4 = d1·g1. A tile takes 25 products where a direct
// convolution takes 36 multiply-adds, and its transforms only add (they round as F(2×2)'s).
template <int M, Sampling S = Sampling::Same>
struct Winograd {
  static_assert(S == Sampling::Same ? M == 2 || M == 4 : M == (S == Sampling::Down ? 2 : 4),
                "F(2x2, 3x3), F(4x4, 3x3), or the five-product stride-2 forms");
  static constexpr int T = S == Sampling::Same ? M + 2 : S == Sampling::Down ? 2 * M + 1 : M / 2 + 1; // patch cells along an axis
  static constexpr int P = S == Sampling::Same ? T : 5;                                           // elements along an axis
  static constexpr int E = P * P;
  static constexpr int64_t Step = S == Sampling::Same ? M : S == Sampling::Down ? 2 * M : M / 2; // input cells from tile to tile
  static constexpr int64_t Origin = S == Sampling::Up ? 0 : -1;                                  // a tile's first input cell from Step·tile
  static constexpr int64_t Tiles = 16; // a block: 16 tiles along a row of tiles
  static constexpr int64_t Rows = 6;   // output channels whose products a task keeps in registers (Products' twelve sums)
  static constexpr int FourGroups = 4; // groups of Rows that FourGroupProducts multiplies at once
  // Eight tiles' values: a block is two of them (the products of six output channels, 12 vectors,
  // fit AVX2's 16 registers; GCC's 16-wide vectors went through the stack there).
  typedef float Lanes __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float))));
  static constexpr int Halves = Tiles / 8;
  static constexpr int64_t ProductsSize = Rows * E * Tiles; // a block's products for one group of output channels
  // The transformed inputs an ElementProducts task multiplies while they stay in the second-level cache.
  static constexpr int64_t ChunkBytes = 256 << 10;
  // How many channels ahead a transform asks for the input rows it reads next (into the second-level
  // cache). A block's rows of one channel are a few cache lines in a plane of their own, too short
  // a run for the hardware's prefetchers, and in a pass the input comes from memory: with the
  // caches flushed between calls, resnet18's three F(4×4) input gradients took 0.67–0.80× ONNX
  // Runtime's time with it, 0.70–0.89× without (medians; bench/analysis.md, forty-eighth pass).
  static constexpr int64_t PrefetchAhead = 2;
  // How far ahead (floats, 2 KiB) the products ask for the transformed filter they read next, a
  // hint per two input channels (a group's 2 × 6 values, most of a cache line). In a pass the
  // filter comes from memory, a stream per group of output channels that the hardware's
  // prefetchers alone left waiting: with the caches flushed between calls, F(4×4) at 64 channels
  // took 0.68× ONNX Runtime's time with it, 0.72× without, F(2×2) at 512 channels 0.84× against
  // 1.10× (medians; bench/analysis.md, forty-ninth pass).
  static constexpr int64_t FilterAhead = 512;

  // Asks for count floats from p into the second-level cache (a hint: nothing is read into
  // registers, and an address past the tensor does not fault).
  __attribute__((always_inline)) static inline void Prefetch(const float* p, int64_t count) {
    for (int64_t i = 0; i < count; i += 16) __builtin_prefetch(p + i, 0, 2);
  }

  // Whether the transformed filter (E·K·C floats) is too large for each block to read it whole:
  // beyond 4 MiB (ResNet's 512 × 512 channels: 16 MiB for F(2×2)) it comes from memory block
  // after block, so it is multiplied element by element instead (ElementProducts), each part of
  // it read once for many blocks. Within it, a block whole is faster (bench/analysis.md).
  static bool LargeFilter(int64_t k, int64_t c) { return E * k * c > (int64_t{1} << 20); }

  // Eight floats at p as one vector (by reference: a vector passed by value differs between the clones' ABIs).
  static const Lanes& At(const float* p) { return *reinterpret_cast<const Lanes*>(p); }
  static Lanes& At(float* p) { return *reinterpret_cast<Lanes*>(p); }
  typedef float Wide __attribute__((vector_size(Tiles * sizeof(float)), aligned(sizeof(float)))); // a block's 16 tiles
  static const Wide& WideAt(const float* p) { return *reinterpret_cast<const Wide*>(p); }
  static Wide& WideAt(float* p) { return *reinterpret_cast<Wide*>(p); }

  // Bᵀ along one axis of a patch: T cells → P elements (for F(4×4), rows scaled by 2, 6, 6, 15/16,
  // 30 and 2 from the points' own, so that each is small integers; G's rows carry the inverse).
  template <typename V>
  __attribute__((always_inline)) static inline void InputAxis(const V (&d)[T], V (&o)[P]) {
    if constexpr (S == Sampling::Down) {
      o[0] = d[0] - d[2];
      o[1] = d[2];
      o[2] = d[4] - d[2];
      o[3] = d[1];
      o[4] = d[3];
    } else if constexpr (S == Sampling::Up) {
      o[0] = d[0] - d[1];
      o[1] = d[1];
      o[2] = d[2] - d[1];
      o[3] = d[0];
      o[4] = d[1];
    } else if constexpr (M == 2) {
      o[0] = d[0] - d[2];
      o[1] = d[1] + d[2];
      o[2] = d[2] - d[1];
      o[3] = d[1] - d[3];
    } else {
      const V p = d[1] - d[3], q = d[2] - d[4];
      o[0] = 2.0f * (d[0] + d[4]) - 3.0f * p - 4.0f * d[2];
      o[1] = d[2] + 5.0f * d[3] + 2.0f * (d[4] - d[1]);
      o[2] = 5.0f * d[2] - d[3] - 2.0f * (d[1] + d[4]);
      o[3] = 2.0f * p + q;
      o[4] = p - 2.0f * q;
      o[5] = 2.0f * (d[1] + d[5]) - 3.0f * q - 4.0f * d[3];
    }
  }

  // Aᵀ along one axis of a tile's products: P elements → M outputs (for F(4×4), the point 1/2's
  // column scaled by 8: its powers 1, 1/2, 1/4, 1/8 as 8, 4, 2, 1).
  __attribute__((always_inline)) static inline void OutputAxis(const Lanes (&m)[P], Lanes (&o)[M]) {
    if constexpr (S == Sampling::Down) {
      o[0] = m[0] + m[1] + m[3];
      o[1] = m[1] + m[2] + m[4];
    } else if constexpr (S == Sampling::Up) {
      o[0] = m[3];
      o[1] = m[0] + m[1];
      o[2] = m[4];
      o[3] = m[1] + m[2];
    } else if constexpr (M == 2) {
      o[0] = m[0] + m[1] + m[2];
      o[1] = m[1] - m[2] - m[3];
    } else {
      const Lanes sum = m[1] + m[2], difference = m[1] - m[2];
      o[0] = m[0] + sum + 8.0f * m[3] + m[4];
      o[1] = difference + 4.0f * m[3] - 2.0f * m[4];
      o[2] = sum + 2.0f * m[3] + 4.0f * m[4];
      o[3] = difference + m[3] - 8.0f * m[4] + m[5];
    }
  }

  // U = G g Gᵀ per (k, c), [C][6] for each element and group of six output channels (zeros past
  // K): a product block's six filter values per channel lie together. Worked in double, rounded once.
  // The [C][6] parts are laid out in the order the products read them (FilterOffset), and made in
  // that order, a group's six channels at a time: each element's part is then written in one run
  // (one channel at a time wrote each cache line six times, 0.26 s for resnet18's F(4×4) filters).
  // Up's W is a transposed convolution's, [C, K, 3, 3] (the stride-2 convolution's own weights); so
  // is a flipped one's (a stride-1 convolution's own weights for its input gradient), each kernel
  // read reversed: the input gradient is the convolution by the flipped kernel.
  static FloatBuffer Transform(const float* w, int64_t k, int64_t c, bool flipped = false) {
    static constexpr double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    static constexpr double g4[6][3] = {{1.0 / 2, 0, 0},           {1.0 / 6, 1.0 / 6, 1.0 / 6},    {1.0 / 6, -1.0 / 6, 1.0 / 6},
                                        {2.0 / 15, 1.0 / 15, 1.0 / 30}, {1.0 / 30, -1.0 / 15, 2.0 / 15}, {0, 0, 1.0 / 2}};
    static constexpr double down[5][3] = {{1, 0, 0}, {1, 0, 1}, {0, 0, 1}, {0, 1, 0}, {0, 1, 0}};
    static constexpr double up[5][3] = {{0, 0, 1}, {1, 0, 1}, {1, 0, 0}, {0, 1, 0}, {0, 1, 0}};
    const double* rows = S == Sampling::Down ? &down[0][0] : S == Sampling::Up ? &up[0][0] : M == 2 ? &g2[0][0] : &g4[0][0];
    const auto& g = *reinterpret_cast<const double(*)[P][3]>(rows);
    const int64_t groups = CeilDiv(k, Rows);
    FloatBuffer u(static_cast<size_t>(E * groups * Rows * c));
    for (int64_t group = 0; group < groups; ++group) {
      float* parts[E];
      for (int xi = 0; xi < E; ++xi) parts[xi] = u.data() + FilterOffset(k, c, group, xi);
      for (int64_t i = 0; i < c; ++i) {
        double f[9][Rows] = {};
        for (int64_t r = 0, o = group * Rows; r < Rows && o < k; ++r, ++o) {
          const float* read = w + (S == Sampling::Up || flipped ? i * k + o : o * c + i) * 9;
          for (int j = 0; j < 9; ++j) f[j][r] = read[flipped ? 8 - j : j];
        }
        double t[P][3][Rows];
        for (int a = 0; a < P; ++a)
          for (int b = 0; b < 3; ++b)
            for (int r = 0; r < Rows; ++r) t[a][b][r] = g[a][0] * f[b][r] + g[a][1] * f[3 + b][r] + g[a][2] * f[6 + b][r];
        for (int a = 0; a < P; ++a)
          for (int b = 0; b < P; ++b) {
            float* part = parts[a * P + b] + i * Rows;
            for (int r = 0; r < Rows; ++r) part[r] = static_cast<float>(t[a][0][r] * g[b][0] + t[a][1][r] * g[b][1] + t[a][2][r] * g[b][2]);
          }
      }
    }
    return u;
  }

  struct Job {
    const float* x;
    const float* u;
    float* y;
    int64_t n, c, k, h, w; // X's [N, C, H, W] and Y's channels
    int64_t oh, ow;        // Y's height and width
    int64_t tileRows = 0, tileColumns = 0, blocksPerRow = 0, blocks = 0, groups = 0;
    float* v = nullptr; // the transformed input of every block, where it is transformed first
    // What follows the convolution, fused so that Y is written once: in a forward a bias per output
    // channel, a residual of Y's shape added, then max(·, 0); in a backward a residual (the other
    // gradients of the same value), then the gate of the rectifier whose output is gate.
    const float* bias = nullptr;
    const float* residual = nullptr;
    bool relu = false;
    const float* gate = nullptr;
    RectifierGate rectifier;
    int64_t channelParts = 1, outputParts = 1;
    float* m = nullptr;      // every block's products [blocks][groups][Rows][E][Tiles], where they are made by element
    int64_t chunkBlocks = 1; // blocks an ElementProducts task multiplies
    std::atomic<bool> failed{false};

    // A block is 16 tiles of one row of tiles where a row has that many; else 16 tiles in a row
    // of the [N, tile rows, tile columns] order (a row of 7×7's four tiles would leave 12 lanes
    // idle). F(2×2) where the AVX-512 clone runs takes the second order also where it needs fewer
    // blocks, as RowTransform reads a block's runs on two rows as fast: 56² has rows of 28 tiles, 56
    // blocks by rows (4 lanes of 16 idle in every other), 49 across them (`in-process winograd 1 150`,
    // 64 channels: 0.685-0.697 → 0.653-0.661 ms).
    bool rowBlocks = false;

    void Plan() {
      tileRows = CeilDiv(oh, M);
      tileColumns = CeilDiv(ow, M);
      blocksPerRow = CeilDiv(tileColumns, Tiles);
      const int64_t flatBlocks = CeilDiv(n * tileRows * tileColumns, Tiles);
      rowBlocks = tileColumns >= Tiles && !(M == 2 && WideVectors() && flatBlocks < n * tileRows * blocksPerRow);
      blocks = rowBlocks ? n * tileRows * blocksPerRow : flatBlocks;
      groups = CeilDiv(k, Rows);
    }

    // Tile j of a block: its sample, tile row and column; false past the last tile.
    bool Tile(int64_t block, int64_t j, int64_t& s, int64_t& ty, int64_t& tx) const {
      int64_t q;
      if (rowBlocks) {
        if ((block % blocksPerRow) * Tiles + j >= tileColumns) return false;
        q = (block / blocksPerRow) * tileColumns + (block % blocksPerRow) * Tiles + j;
      } else {
        q = block * Tiles + j;
        if (q >= n * tileRows * tileColumns) return false;
      }
      s = q / (tileRows * tileColumns);
      ty = q / tileColumns % tileRows;
      tx = q % tileColumns;
      return true;
    }
    // Floats from one element's transformed inputs [C][Tiles] to the next's: one cache line more
    // than C·Tiles, which is a multiple of 4 KiB for C a multiple of 64, where every element of a
    // channel would fall in one set of the first-level cache and the transform's E stores for a
    // channel evict each other (F(4×4)'s transform took 2.6–2.8× as long, F(2×2)'s 1.25–1.5×).
    int64_t ElementStride() const { return c * Tiles + Tiles; }
    int64_t BlockSize() const { return E * ElementStride(); } // [E][C][Tiles], elements ElementStride apart

    // Y's count cells from offset at (of output channel channel) from the convolution's sums
    // there: a loop per step, so that each is vectorised.
    __attribute__((always_inline)) inline void Finish(float* cells, int64_t count, int64_t channel, int64_t at) const {
      if (bias)
        for (int64_t i = 0; i < count; ++i) cells[i] += bias[channel];
      if (residual)
        for (int64_t i = 0; i < count; ++i) cells[i] += residual[at + i];
      if (relu)
        for (int64_t i = 0; i < count; ++i) cells[i] = std::max(cells[i], 0.0f);
      if (gate) rectifier.Apply(gate + at, cells, count);
    }

    // The cells a row of a block's tiles reads, from a patch's first.
    static constexpr int64_t RowCells = Step * (Tiles - 1) + T;

    // Cells x0 .. x0 + RowCells - 1 of row yy of the plane at offset plane, zeros outside the image.
    __attribute__((always_inline)) inline void Row(int64_t plane, int64_t yy, int64_t x0, float* cells) const {
      constexpr int64_t count = RowCells;
      const int64_t at = plane + yy * w + x0;
      const bool inside = yy >= 0 && yy < h;
      const int64_t begin = inside ? std::clamp<int64_t>(-x0, 0, count) : count, end = inside ? std::clamp<int64_t>(w - x0, begin, count) : count;
      for (int64_t i = 0; i < begin; ++i) cells[i] = 0.0f;
      for (int64_t i = begin; i < end; ++i) cells[i] = x[at + i];
      for (int64_t i = end; i < count; ++i) cells[i] = 0.0f;
    }
  };

  // A block's tiles, worked out once per task, and its runs: valid tiles side by side on one row
  // of tiles, each read and written as one row of cells.
  struct BlockTiles {
    int64_t s[Tiles] = {}, ty[Tiles] = {}, tx[Tiles] = {};
    bool valid[Tiles];
    int runCount = 0;
    int runFirst[Tiles], runEnd[Tiles]; // run r's tiles [runFirst[r], runEnd[r])
    BlockTiles(const Job& job, int64_t block) {
      for (int64_t j = 0; j < Tiles; ++j) valid[j] = job.Tile(block, j, s[j], ty[j], tx[j]);
      for (int j = 0, e; j < Tiles; j = e) {
        e = j + 1;
        if (!valid[j]) continue;
        while (e < Tiles && valid[e] && s[e] == s[j] && ty[e] == ty[j]) ++e;
        runFirst[runCount] = j;
        runEnd[runCount++] = e;
      }
    }
  };

#ifdef AVX512_INTRINSICS
  // TransformInput on the AVX-512 clone's hosts where RowTransform (below) does not apply: each of
  // a patch's T² cells for the block's 16 tiles is one masked gather (cells outside the image, and
  // tiles past the last, read as 0), and the transform runs on 16-float vectors, so the patches
  // never go through memory cell by cell. False (nothing done) where the block's tiles lie too far
  // apart for 32-bit offsets.
  __attribute__((target("arch=x86-64-v4"), noinline)) static bool GatherTransform(const Job& job, const BlockTiles& tiles, int64_t c0, int64_t c1, float* v) {
    const int64_t area = job.h * job.w, s0 = tiles.s[0];
    int64_t last = s0;
    for (int j = 0; j < Tiles; ++j)
      if (tiles.valid[j]) last = tiles.s[j];
    if ((last - s0 + 1) * job.c * area + T * (job.w + 1) > std::numeric_limits<int32_t>::max()) return false;
    alignas(64) int32_t top[Tiles], left[Tiles], offset[Tiles];
    for (int j = 0; j < Tiles; ++j) {
      top[j] = tiles.valid[j] ? static_cast<int32_t>(tiles.ty[j] * Step + Origin) : std::numeric_limits<int32_t>::min() / 2;
      left[j] = static_cast<int32_t>(tiles.tx[j] * Step + Origin);
      offset[j] = tiles.valid[j] ? static_cast<int32_t>((tiles.s[j] - s0) * job.c * area + (tiles.ty[j] * Step + Origin) * job.w + tiles.tx[j] * Step + Origin) : 0;
    }
    const __m512i y0 = _mm512_load_si512(top), x0 = _mm512_load_si512(left), origin = _mm512_load_si512(offset);
    __mmask16 rows[T], columns[T];
    for (int i = 0; i < T; ++i) { // which tiles' patch row i and patch column i lie inside the image
      const __m512i y = _mm512_add_epi32(y0, _mm512_set1_epi32(i)), x = _mm512_add_epi32(x0, _mm512_set1_epi32(i));
      rows[i] = _mm512_cmpge_epi32_mask(y, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(y, _mm512_set1_epi32(static_cast<int32_t>(job.h)));
      columns[i] = _mm512_cmpge_epi32_mask(x, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(x, _mm512_set1_epi32(static_cast<int32_t>(job.w)));
    }
    for (int64_t ch = c0; ch < c1; ++ch) {
      const float* plane = job.x + (s0 * job.c + ch) * area;
      Wide t[P][T]; // Bᵀ d: [element row][patch column]
      for (int b = 0; b < T; ++b) {
        Wide column[T], o[P];
        for (int a = 0; a < T; ++a)
          column[a] = (Wide)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), rows[a] & columns[b],
                                                      _mm512_add_epi32(origin, _mm512_set1_epi32(static_cast<int32_t>(a * job.w + b))), plane, 4);
        InputAxis(column, o);
        for (int a = 0; a < P; ++a) t[a][b] = o[a];
      }
      for (int a = 0; a < P; ++a) {
        Wide o[P];
        InputAxis(t[a], o);
        for (int b = 0; b < P; ++b) WideAt(v + (a * P + b) * job.ElementStride() + ch * Tiles) = o[b];
      }
    }
    return true;
  }

  // TransformInput on the AVX-512 clone's hosts where the block's tiles lie in at most four runs
  // along rows of tiles, none of F(4×4) over 15 tiles (F(2×2) on images from 7 cells wide, F(4×4)
  // from 13 to 60: ResNet's 56², 28² and 14², and one sample's 7²): each patch row of a run is up
  // to four masked loads, and cell (a, b) of its tiles every Step-th float of them from column b (two
  // permutes), where a gather costs ~20 cycles (Zen 5). False (nothing done) for other blocks.
  __attribute__((target("arch=x86-64-v4"), noinline)) static bool RowTransform(const Job& job, const BlockTiles& tiles, int64_t c0, int64_t c1, float* v) {
    constexpr int MaxRuns = 4;
    struct Run {
      int64_t offset;        // the run's first cell (its first tile's, column Step·x + Origin) from the sample's plane start
      __mmask16 lanes;       // the block's lanes the run fills
      __mmask16 rows;        // patch rows inside the image (bit a)
      int vectors;           // vectors a patch row of the run spans (16 floats each)
      __mmask16 inside[4];   // per vector: its cells inside the image's row
      __m512i at[T];         // per patch column b: each lane's cell from the run's first (Step·tile + b)
      __mmask16 upper[T];    // per patch column b: the lanes whose cell lies in the third or fourth vector
    } runs[MaxRuns];
    int count = 0;
    const int64_t area = job.h * job.w;
    for (int r = 0; r < tiles.runCount; ++r) {
      const int j = tiles.runFirst[r], e = tiles.runEnd[r];
      const int64_t span = Step * (e - j - 1) + T;
      if (count == MaxRuns || span > 64) return false;
      Run& run = runs[count++];
      const int64_t y0 = tiles.ty[j] * Step + Origin, x0 = tiles.tx[j] * Step + Origin;
      run.offset = tiles.s[j] * job.c * area + y0 * job.w + x0;
      run.lanes = static_cast<__mmask16>(((1u << (e - j)) - 1) << j);
      run.vectors = static_cast<int>(CeilDiv(span, 16));
      run.rows = 0;
      for (int a = 0; a < T; ++a)
        if (y0 + a >= 0 && y0 + a < job.h) run.rows |= static_cast<__mmask16>(1u << a);
      for (int q = 0; q < 4; ++q) {
        uint32_t bits = 0;
        for (int i = 0; i < 16; ++i) {
          const int64_t x = x0 + 16 * q + i;
          if (x >= 0 && x < job.w && 16 * q + i < span) bits |= 1u << i;
        }
        run.inside[q] = static_cast<__mmask16>(bits);
      }
      alignas(64) int32_t first[Tiles] = {};
      for (int t = j; t < e; ++t) first[t] = static_cast<int32_t>(Step * (t - j));
      for (int b = 0; b < T; ++b) {
        run.at[b] = _mm512_add_epi32(_mm512_load_si512(first), _mm512_set1_epi32(b));
        run.upper[b] = _mm512_mask_cmpge_epi32_mask(run.lanes, run.at[b], _mm512_set1_epi32(32));
      }
    }
    for (int64_t ch = c0; ch < c1; ++ch) {
      Wide h[T][P]; // the patch rows transformed along their columns: [patch row][element column]
      for (int a = 0; a < T; ++a) {
        Wide d[T] = {}; // cell (a, b) of every tile of the block
        for (int r = 0; r < count; ++r) {
          const Run& run = runs[r];
          if (!(run.rows >> a & 1)) continue; // a padding row: zeros
          const float* row = job.x + run.offset + ch * area + a * job.w;
          if (ch + PrefetchAhead < c1) Prefetch(row + PrefetchAhead * area, 16 * run.vectors);
          __m512 cells[4];
          for (int q = 0; q < 4; ++q) cells[q] = q < run.vectors ? _mm512_maskz_loadu_ps(run.inside[q], row + 16 * q) : _mm512_setzero_ps();
          for (int b = 0; b < T; ++b) { // a permute reads an index's low five bits: the cell within its pair of vectors
            __m512 cell = _mm512_mask_mov_ps((__m512)d[b], run.lanes, _mm512_permutex2var_ps(cells[0], run.at[b], cells[1]));
            if (run.upper[b]) cell = _mm512_mask_mov_ps(cell, run.upper[b], _mm512_permutex2var_ps(cells[2], run.at[b], cells[3]));
            d[b] = (Wide)cell;
          }
        }
        InputAxis(d, h[a]);
      }
      for (int b = 0; b < P; ++b) {
        Wide column[T], o[P];
        for (int a = 0; a < T; ++a) column[a] = h[a][b];
        InputAxis(column, o);
        for (int a = 0; a < P; ++a) WideAt(v + (a * P + b) * job.ElementStride() + ch * Tiles) = o[a];
      }
    }
    return true;
  }
#endif

  // Bᵀ d B of channels [c0, c1) of a block's 16 tiles (tile row ty of sample s, tiles from x0) into
  // v: [E][C][Tiles]. Cells outside the image are zeros (the padding); tiles past the row's end
  // read zeros too and are never written back.
  __attribute__((always_inline)) static inline void TransformInput(const Job& job, int64_t block, int64_t c0, int64_t c1, float* v) {
    const BlockTiles tiles(job, block);
#ifdef AVX512_INTRINSICS
    if (WideVectors() && (RowTransform(job, tiles, c0, c1, v) || GatherTransform(job, tiles, c0, c1, v))) return;
#endif
    const int64_t s0 = tiles.s[0], ty0 = tiles.ty[0], x0 = tiles.tx[0] * Step + Origin, area = job.h * job.w;
    // Where tiles are gathered one by one: each tile's top-left cell in its sample's first plane,
    // and whether its T×T cells all lie inside the image (most do: no cell then needs a check).
    int64_t origin[Tiles];
    bool inside[Tiles];
    for (int j = 0; j < Tiles; ++j) {
      const int64_t yy = tiles.ty[j] * Step + Origin, xx = tiles.tx[j] * Step + Origin;
      inside[j] = tiles.valid[j] && yy >= 0 && yy + T - 1 < job.h && xx >= 0 && xx + T - 1 < job.w;
      origin[j] = tiles.s[j] * job.c * area + yy * job.w + xx;
    }
    for (int64_t ch = c0; ch < c1; ++ch) {
      float d[T][T][Tiles]; // [patch row][patch column][tile]
      if (job.rowBlocks) {
        const int64_t plane = (s0 * job.c + ch) * area;
        for (int a = 0; a < T; ++a) {
          const int64_t yy = ty0 * Step + Origin + a;
          if (ch + PrefetchAhead < c1 && yy >= 0 && yy < job.h) {
            const int64_t begin = std::max<int64_t>(x0, 0), end = std::min(x0 + Job::RowCells, job.w);
            Prefetch(job.x + plane + PrefetchAhead * area + yy * job.w + begin, end - begin);
          }
          float cells[Job::RowCells];
          job.Row(plane, yy, x0, cells);
          for (int b = 0; b < T; ++b)
            for (int j = 0; j < Tiles; ++j) d[a][b][j] = cells[Step * j + b];
        }
      } else {
        for (int j = 0; j < Tiles; ++j) {
          if (inside[j]) {
            const float* cells = job.x + origin[j] + ch * area;
            for (int a = 0; a < T; ++a)
              for (int b = 0; b < T; ++b) d[a][b][j] = cells[a * job.w + b];
            continue;
          }
          const int64_t plane = (tiles.s[j] * job.c + ch) * area;
          for (int a = 0; a < T; ++a)
            for (int b = 0; b < T; ++b) {
              const int64_t yy = tiles.ty[j] * Step + Origin + a, xx = tiles.tx[j] * Step + Origin + b;
              d[a][b][j] = tiles.valid[j] && yy >= 0 && yy < job.h && xx >= 0 && xx < job.w ? job.x[plane + yy * job.w + xx] : 0.0f;
            }
        }
      }
      for (int half = 0; half < Halves; ++half) {
        Lanes t[P][T]; // Bᵀ d: [element row][patch column]
        for (int b = 0; b < T; ++b) {
          Lanes column[T], o[P];
          for (int a = 0; a < T; ++a) column[a] = At(d[a][b] + 8 * half);
          InputAxis(column, o);
          for (int a = 0; a < P; ++a) t[a][b] = o[a];
        }
        for (int a = 0; a < P; ++a) {
          Lanes o[P];
          InputAxis(t[a], o);
          for (int b = 0; b < P; ++b) At(v + (a * P + b) * job.ElementStride() + ch * Tiles + 8 * half) = o[b];
        }
      }
    }
  }

  // Output channels [6·g0, 6·g1) of a block: per group of six (four groups at once where the
  // AVX-512 clone runs: FourGroupProducts), the E products over every input channel, then Aᵀ m A
  // into the output's M×M tiles.
  __attribute__((always_inline)) static inline void Multiply(const Job& job, int64_t block, int64_t g0, int64_t g1, const float* v) {
    const BlockTiles tiles(job, block);
    for (int64_t g = g0; g < g1;) {
      if (WideVectors() && g + FourGroups <= g1) {
        float m[FourGroups][Rows][E][Tiles]; // 55 KB for F(4×4)
        for (int xi = 0; xi < E; ++xi) FourGroupProducts(job, v, xi, g, &m[0][0][0][0]);
        for (int q = 0; q < FourGroups; ++q) WriteTiles(job, tiles, g + q, m[q]);
        g += FourGroups;
        continue;
      }
      float m[Rows][E][Tiles];
      for (int xi = 0; xi < E; ++xi) Products(job, v, xi, g, &m[0][0][0]);
      WriteTiles(job, tiles, g, m);
      ++g;
    }
  }

  // Where element xi of the transformed filter for output channels [6·g, 6·g + 6) starts. A block
  // at a time (Multiply) reads the groups one after the other, each through all its elements, so
  // they lie [⌈K/6⌉][E]: in a one-sample pass the filter comes from memory, not the cache, and one
  // run per group streams where a jump per element stalled (ResNet's 128 channels on 28²: 0.67 →
  // 0.59 ms a call). A large filter is read an element at a time for many blocks
  // (ElementProducts), so it lies [E][⌈K/6⌉].
  static int64_t FilterOffset(int64_t k, int64_t c, int64_t g, int64_t xi) {
    return (LargeFilter(k, c) ? xi * CeilDiv(k, Rows) + g : g * E + xi) * c * Rows;
  }
  static const float* FilterOf(const Job& job, int64_t g, int xi) { return job.u + FilterOffset(job.k, job.c, g, xi); }

  // Element xi of a block's E products for output channels [6·g, 6·g + 6): the sums over every input
  // channel of the transformed input v [E][C][Tiles] times the transformed filter, into
  // m[r][xi][tile] (m: [Rows][E][Tiles]).
  __attribute__((always_inline)) static inline void Products(const Job& job, const float* v, int xi, int64_t g, float* m) {
    if (WideVectors()) return WideProducts(job, v, xi, g, m);
    const float* vx = v + xi * job.ElementStride();
    const float* ux = FilterOf(job, g, xi);
    // Twelve accumulators named one by one: as arrays GCC split the loop by half, loading each
    // filter value twice.
    Lanes a0 = {}, b0 = {}, a1 = {}, b1 = {}, a2 = {}, b2 = {}, a3 = {}, b3 = {}, a4 = {}, b4 = {}, a5 = {}, b5 = {};
    for (int64_t ch = 0; ch < job.c; ++ch) {
      const Lanes low = At(vx + ch * Tiles), high = At(vx + ch * Tiles + 8);
      const float* f = ux + ch * Rows;
      if ((ch & 1) == 0) Prefetch(f + FilterAhead, 1);
      a0 += f[0] * low, b0 += f[0] * high;
      a1 += f[1] * low, b1 += f[1] * high;
      a2 += f[2] * low, b2 += f[2] * high;
      a3 += f[3] * low, b3 += f[3] * high;
      a4 += f[4] * low, b4 += f[4] * high;
      a5 += f[5] * low, b5 += f[5] * high;
    }
    const Lanes sums[Rows][Halves] = {{a0, b0}, {a1, b1}, {a2, b2}, {a3, b3}, {a4, b4}, {a5, b5}};
    for (int r = 0; r < Rows; ++r)
      for (int half = 0; half < Halves; ++half) At(m + (r * E + xi) * Tiles + 8 * half) = sums[r][half];
  }

  // Products with 16-float vectors, one for the block's 16 tiles, where the library runs its
  // AVX-512 clone: hosts with two full-width units per core (Intel's servers, AMD's Zen 5) do
  // twice the multiply-adds of 8-float vectors, as ONNX Runtime's own kernels do there (Zen 4
  // splits them in two: no faster, no slower). Even and odd input channels add into two sets of
  // six sums, so that twelve are in flight, as in Products.
  __attribute__((always_inline)) static inline void WideProducts(const Job& job, const float* v, int xi, int64_t g, float* m) {
    const float* vx = v + xi * job.ElementStride();
    const float* ux = FilterOf(job, g, xi);
    Wide a0 = {}, b0 = {}, a1 = {}, b1 = {}, a2 = {}, b2 = {}, a3 = {}, b3 = {}, a4 = {}, b4 = {}, a5 = {}, b5 = {};
    int64_t ch = 0;
    for (; ch + 1 < job.c; ch += 2) {
      const Wide even = WideAt(vx + ch * Tiles), odd = WideAt(vx + (ch + 1) * Tiles);
      const float* f = ux + ch * Rows; // six filter values of channel ch, then six of ch + 1
      Prefetch(f + FilterAhead, 1);
      a0 += f[0] * even, b0 += f[6] * odd;
      a1 += f[1] * even, b1 += f[7] * odd;
      a2 += f[2] * even, b2 += f[8] * odd;
      a3 += f[3] * even, b3 += f[9] * odd;
      a4 += f[4] * even, b4 += f[10] * odd;
      a5 += f[5] * even, b5 += f[11] * odd;
    }
    if (ch < job.c) {
      const Wide last = WideAt(vx + ch * Tiles);
      const float* f = ux + ch * Rows;
      a0 += f[0] * last, a1 += f[1] * last, a2 += f[2] * last, a3 += f[3] * last, a4 += f[4] * last, a5 += f[5] * last;
    }
    WideAt(m + (0 * E + xi) * Tiles) = a0 + b0;
    WideAt(m + (1 * E + xi) * Tiles) = a1 + b1;
    WideAt(m + (2 * E + xi) * Tiles) = a2 + b2;
    WideAt(m + (3 * E + xi) * Tiles) = a3 + b3;
    WideAt(m + (4 * E + xi) * Tiles) = a4 + b4;
    WideAt(m + (5 * E + xi) * Tiles) = a5 + b5;
  }

  // WideProducts for four groups of output channels at once, [6·g, 6·g + 24), into m's four
  // [Rows][E][Tiles] blocks: each input channel's 16 tiles are loaded once for 24 multiply-adds
  // instead of 6 (24 sums in AVX-512's 32 registers): 5–10% off the kernel's time on Zen 5.
  __attribute__((always_inline)) static inline void FourGroupProducts(const Job& job, const float* v, int xi, int64_t g, float* m) {
    const float* vx = v + xi * job.ElementStride();
    const float* f0 = FilterOf(job, g, xi);
    const int64_t apart = FilterOf(job, g + 1, xi) - f0; // a group's filter values from the next's
    const float *f1 = f0 + apart, *f2 = f1 + apart, *f3 = f2 + apart;
    Wide s[FourGroups * Rows] = {};
    for (int64_t ch = 0; ch < job.c; ++ch, f0 += Rows, f1 += Rows, f2 += Rows, f3 += Rows) {
      const Wide x = WideAt(vx + ch * Tiles);
      if ((ch & 1) == 0)
        for (const float* f : {f0, f1, f2, f3}) Prefetch(f + FilterAhead, 1);
#pragma GCC unroll 6
      for (int r = 0; r < Rows; ++r) {
        s[r] += f0[r] * x;
        s[Rows + r] += f1[r] * x;
        s[2 * Rows + r] += f2[r] * x;
        s[3 * Rows + r] += f3[r] * x;
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < FourGroups; ++q)
#pragma GCC unroll 6
      for (int r = 0; r < Rows; ++r) WideAt(m + q * ProductsSize + (r * E + xi) * Tiles) = s[q * Rows + r];
  }

  // Asks for a channel's rows of the residual and the gate under a block's tiles, run by run,
  // which Finish reads next (a backward's two more inputs from memory, row by row of planes apart,
  // as the transform's input).
  __attribute__((always_inline)) static inline void PrefetchFinish(const Job& job, const BlockTiles& tiles, int64_t channel) {
    for (int q = 0; q < tiles.runCount; ++q) {
      const int j = tiles.runFirst[q], e = tiles.runEnd[q];
      const int64_t count = std::min<int64_t>((e - j) * M, job.ow - tiles.tx[j] * M);
      for (int a = 0; a < M && tiles.ty[j] * M + a < job.oh; ++a) {
        const int64_t at = ((tiles.s[j] * job.k + channel) * job.oh + tiles.ty[j] * M + a) * job.ow + tiles.tx[j] * M;
        if (job.residual) Prefetch(job.residual + at, count);
        if (job.gate) Prefetch(job.gate + at, count);
      }
    }
  }

  // Aᵀ m A of output channels [6·g, 6·g + 6) of a block's tiles, finished (bias, residual, max) into Y.
  __attribute__((always_inline)) static inline void WriteTiles(const Job& job, const BlockTiles& tiles, int64_t g, const float (&m)[Rows][E][Tiles]) {
    const int64_t s0 = tiles.s[0], ty0 = tiles.ty[0], x0 = tiles.tx[0] * M, width = std::min(M * Tiles, job.ow - x0);
    for (int r = 0; r < Rows && g * Rows + r < job.k; ++r) {
      const int64_t channel = g * Rows + r;
      if (channel + 1 < job.k && (job.residual || job.gate)) PrefetchFinish(job, tiles, channel + 1);
      float out[M][M][Tiles]; // [tile row][tile column][tile]
      for (int half = 0; half < Halves; ++half) {
        Lanes t[M][P]; // Aᵀ m: [tile row][element column]
        for (int b = 0; b < P; ++b) {
          Lanes column[P], o[M];
          for (int a = 0; a < P; ++a) column[a] = At(m[r][a * P + b] + 8 * half);
          OutputAxis(column, o);
          for (int a = 0; a < M; ++a) t[a][b] = o[a];
        }
        for (int a = 0; a < M; ++a) {
          Lanes o[M];
          OutputAxis(t[a], o);
          for (int i = 0; i < M; ++i) At(out[a][i] + 8 * half) = o[i];
        }
      }
      for (int a = 0; a < M; ++a) {
        if (job.rowBlocks) {
          const int64_t yy = ty0 * M + a;
          if (yy >= job.oh) break;
          float cells[M * Tiles];
          for (int j = 0; j < Tiles; ++j)
            for (int i = 0; i < M; ++i) cells[M * j + i] = out[a][i][j];
          const int64_t row = ((s0 * job.k + channel) * job.oh + yy) * job.ow + x0;
          job.Finish(cells, width, channel, row);
          std::memcpy(job.y + row, cells, static_cast<size_t>(width) * sizeof(float));
          continue;
        }
        // Run by run: the tiles of one tile row are side by side in the block, so each run's row
        // of cells is finished and written whole (the row's end may cut its last tile).
        for (int q = 0; q < tiles.runCount; ++q) {
          const int j = tiles.runFirst[q], e = tiles.runEnd[q];
          if (tiles.ty[j] * M + a >= job.oh) continue;
          const int64_t at = ((tiles.s[j] * job.k + channel) * job.oh + tiles.ty[j] * M + a) * job.ow + tiles.tx[j] * M;
          const int64_t count = std::min<int64_t>((e - j) * M, job.ow - tiles.tx[j] * M);
          float cells[M * Tiles];
          for (int t = j; t < e; ++t)
            for (int i = 0; i < M; ++i) cells[M * (t - j) + i] = out[a][i][t];
          job.Finish(cells, count, channel, at);
          std::memcpy(job.y + at, cells, static_cast<size_t>(count) * sizeof(float));
        }
      }
    }
  }

  // A block's transformed input: kept by the thread for the next block up to 2 MB (ResNet's
  // largest, 512 channels, is 512 KB for F(2×2), 1.1 MB for F(4×4)); a larger one, from a model
  // with more channels, lives for the block only, so no pool thread keeps it.
  static float* Scratch(size_t size, FloatBuffer& once) {
    constexpr size_t kept = (2 << 20) / sizeof(float);
    thread_local FloatBuffer scratch;
    FloatBuffer& buffer = size <= kept ? scratch : once;
    if (buffer.size() < size) buffer.resize(size);
    return buffer.data();
  }

  WIDEST_VECTORS
  static void Whole(void* data, size_t index) {
    Job& job = *static_cast<Job*>(data);
    try {
      FloatBuffer once;
      float* v = Scratch(static_cast<size_t>(job.BlockSize()), once);
      const int64_t block = static_cast<int64_t>(index);
      TransformInput(job, block, 0, job.c, v);
      Multiply(job, block, 0, job.groups, v);
    } catch (const std::bad_alloc&) {
      job.failed = true;
    }
  }

  WIDEST_VECTORS
  static void TransformPart(void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const int64_t block = static_cast<int64_t>(index) / job.channelParts, part = static_cast<int64_t>(index) % job.channelParts;
    const int64_t c0 = part * job.c / job.channelParts, c1 = (part + 1) * job.c / job.channelParts;
    TransformInput(job, block, c0, c1, job.v + block * job.BlockSize());
  }

  WIDEST_VECTORS
  static void ProductPart(void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const int64_t block = static_cast<int64_t>(index) / job.outputParts, part = static_cast<int64_t>(index) % job.outputParts;
    Multiply(job, block, part * job.groups / job.outputParts, (part + 1) * job.groups / job.outputParts, job.v + block * job.BlockSize());
  }

  // Output channels [24·index, 24·index + 24) of a job's one block: four groups, for FourGroupProducts.
  WIDEST_VECTORS
  static void FourGroupPart(void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const int64_t g0 = FourGroups * static_cast<int64_t>(index);
    Multiply(job, 0, g0, std::min(job.groups, g0 + FourGroups), job.v);
  }

  // Element xi of the products of a chunk of blocks, for every group of output channels: the
  // filter's element xi for a group (6·C floats) is read once for the chunk, whose transformed
  // inputs stay in cache.
  WIDEST_VECTORS
  static void ElementProducts(void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const int xi = static_cast<int>(index % E);
    const int64_t first = static_cast<int64_t>(index / E) * job.chunkBlocks, last = std::min(job.blocks, first + job.chunkBlocks);
    for (int64_t g = 0; g < job.groups; ++g)
      for (int64_t block = first; block < last; ++block)
        Products(job, job.v + block * job.BlockSize(), xi, g, job.m + (block * job.groups + g) * ProductsSize);
  }

  WIDEST_VECTORS
  static void WritePart(void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const int64_t block = static_cast<int64_t>(index) / job.outputParts, part = static_cast<int64_t>(index) % job.outputParts;
    const BlockTiles tiles(job, block);
    for (int64_t g = part * job.groups / job.outputParts; g < (part + 1) * job.groups / job.outputParts; ++g)
      WriteTiles(job, tiles, g, *reinterpret_cast<const float(*)[Rows][E][Tiles]>(job.m + (block * job.groups + g) * ProductsSize));
  }

  // The convolution of X by the transformed filter u into y (shapes checked by the caller).
  static Ort::Status Run(const OrtApi* api, OrtKernelContext* context, Job& job) {
    if (job.n == 0 || job.c == 0 || job.k == 0 || job.h == 0 || job.w == 0 || job.oh == 0 || job.ow == 0) {
      // No products: Y is the bias and the residual alone (then rectified or gated), or empty.
      if (job.c == 0)
        for (int64_t i = 0, plane = job.oh * job.ow; i < job.n * job.k; ++i) {
          std::fill(job.y + i * plane, job.y + (i + 1) * plane, 0.0f);
          job.Finish(job.y + i * plane, plane, i % job.k, i * plane);
        }
      return Ort::Status{nullptr};
    }
    auto run = [&](void (*task)(void*, size_t), int64_t tasks) {
      Ort::Status status(api->KernelContext_ParallelFor(context, task, static_cast<size_t>(tasks), 0, &job));
      if (status.IsOK() && job.failed) return Ort::Status("WinogradConv: out of memory", ORT_FAIL);
      return status;
    };
    job.Plan();
    // Two blocks or more for each of the host's threads, and a filter that stays in cache: each
    // task does a block whole. Else the input is transformed first, split by channels; then the
    // products are split by output channels, or, for a filter too large to read again for each
    // block, by element (ElementProducts) where there are several blocks.
    static const int64_t threads = std::max(1u, std::thread::hardware_concurrency());
    const bool largeFilter = LargeFilter(job.k, job.c);
    if (job.blocks >= 2 * threads && !largeFilter) return run(&Whole, job.blocks);
    // Scratch from the session's allocator: its arena keeps the pages from run to run, where a
    // fresh allocation of this size (megabytes) is faulted in and zeroed by the kernel each call.
    Ort::Allocator allocator = Ort::KernelContext(context).GetAllocator(*Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault));
    Ort::MemoryAllocation transformed = allocator.GetAllocation(static_cast<size_t>(job.blocks * job.BlockSize()) * sizeof(float));
    job.v = static_cast<float*>(transformed.get());
    job.channelParts = std::min<int64_t>(job.c, 8);
    job.outputParts = std::min(job.groups, CeilDiv(16, job.blocks));
    Ort::Status status = run(&TransformPart, job.blocks * job.channelParts);
    if (!status.IsOK()) return status;
    if (!largeFilter) return run(&ProductPart, job.blocks * job.outputParts);
    // F(2×2)'s one block (a sample of 7×7 or less): split by four groups of output channels, each
    // task reads its part of the filter once, as ElementProducts would, and writes its tiles
    // without the products' trip through memory (ResNet's 512 channels, caches flushed, six rounds:
    // 0.65–0.72 of ONNX Runtime's time, median 0.66, against 0.69–0.71, median 0.70). F(4×4)'s, 36
    // elements a group, is slower so (0.57 against 0.53 at 256 channels on 14²).
    if (M == 2 && job.blocks == 1) return run(&FourGroupPart, CeilDiv(job.groups, FourGroups));
    Ort::MemoryAllocation products = allocator.GetAllocation(static_cast<size_t>(job.blocks * job.groups * ProductsSize) * sizeof(float));
    job.m = static_cast<float*>(products.get());
    job.chunkBlocks = std::max<int64_t>(1, ChunkBytes / (job.c * Tiles * static_cast<int64_t>(sizeof(float))));
    status = run(&ElementProducts, E * CeilDiv(job.blocks, job.chunkBlocks));
    return status.IsOK() ? run(&WritePart, job.blocks * job.outputParts) : std::move(status);
  }
};

// See the file's head. W is transformed once where it is a constant (a backward's, the forward's
// own weights read flipped, are), else on every call.
struct WinogradConv {
  // Which form the attributes ask for: stride 1 with tile 2 or 4, stride 2 (tile 2), or with
  // transposed = 1 a stride-2 convolution's transpose (tile 4); Invalid for anything else. A
  // stride-1 transpose is a stride-1 form whose W is read flipped (swapped_).
  enum class Form { Invalid, Tile2, Tile4, Down, Up };

  static Form FormOf(int64_t stride, int64_t tile, int64_t transposed) {
    if (stride == 1 && (transposed == 0 || transposed == 1)) return tile == 2 ? Form::Tile2 : tile == 4 ? Form::Tile4 : Form::Invalid;
    if (stride == 2) return transposed == 0 ? Form::Down : transposed == 1 ? Form::Up : Form::Invalid;
    return Form::Invalid;
  }
  static constexpr const char* FormRequirement =
      "WinogradConv: tile must be 2 or 4 with stride 1, stride 1 or 2, transposed 0 or 1, "
      "and output_padding two of 0 or 1 (with transposed 1)";

  WinogradConv(const OrtApi* api, const OrtKernelInfo* info) : api_(api) {
    Ort::ConstKernelInfo attributes(info);
    relu_ = Optional<int64_t>(attributes, "relu", 0) != 0;
    const int64_t transposed = Optional<int64_t>(attributes, "transposed", 0);
    form_ = FormOf(Optional<int64_t>(attributes, "stride", 1), Optional<int64_t>(attributes, "tile", 2), transposed);
    swapped_ = transposed == 1;
    try {
      padding_ = attributes.GetAttributes<int64_t>("output_padding");
    } catch (const Ort::Exception&) {
      padding_ = {0, 0};
    }
    if (!ValidPadding(padding_)) form_ = Form::Invalid;
    gate_.Read(attributes);
    int constant = 0;
    const OrtValue* w = nullptr;
    OrtStatus* status = api->KernelInfoGetConstantInput_tensor(info, 1, &constant, &w);
    if (status) {
      api->ReleaseStatus(status);
      return;
    }
    if (!constant || !w || form_ == Form::Invalid) return;
    try {
      Ort::ConstValue value(w);
      const auto shape = value.GetTensorTypeAndShapeInfo().GetShape();
      if (!FilterShape(shape)) return;
      outputs_ = Outputs(swapped_, shape);
      inputs_ = Inputs(swapped_, shape);
      filter_ = Transform(value.GetTensorData<float>(), outputs_, inputs_);
    } catch (const std::exception&) {
      filter_.clear(); // transformed on each call instead
    }
  }

  // Y's [N, K, ·, ·] for X [N, C, H, W] and W [K, C, 3, 3] ([C, K, 3, 3] transposed): H × W with
  // stride 1, ⌈H/2⌉ × ⌈W/2⌉ with stride 2, 2H - 1 + output_padding transposed.
  static bool OutputShape(Ort::ShapeInferContext& context, Shape& shape) {
    if (context.GetInputCount() < 2) return false;
    const auto& x = context.GetInputShape(0);
    const auto& w = context.GetInputShape(1);
    auto attribute = [&](const char* name, int64_t fallback) {
      try {
        return context.GetAttrInt(name);
      } catch (const std::exception&) {
        return fallback;
      }
    };
    const int64_t transposed = attribute("transposed", 0);
    const Form form = FormOf(attribute("stride", 1), attribute("tile", 2), transposed);
    if (x.size() != 4 || w.size() != 4 || form == Form::Invalid) return false;
    const auto& k = transposed == 1 ? w[1] : w[0];
    if (!k.IsInt()) return false;
    if (form == Form::Tile2 || form == Form::Tile4) {
      shape = {x[0], k, x[2], x[3]};
      return true;
    }
    if (!x[2].IsInt() || !x[3].IsInt()) return false;
    std::vector<int64_t> padding{0, 0};
    if (form == Form::Up) {
      try {
        padding = context.GetAttrInts("output_padding");
      } catch (const std::exception&) {
      }
      if (!ValidPadding(padding)) return false;
    }
    const int64_t ys[2] = {Sized(form, x[2].AsInt(), padding[0]), Sized(form, x[3].AsInt(), padding[1])};
    if (ys[0] < 0 || ys[1] < 0) return false;
    shape = {x[0], k, ys[0], ys[1]};
    return true;
  }

  Ort::Status Compute(OrtKernelContext* context, const Ort::Custom::Tensor<float>& x, const Ort::Custom::Tensor<float>& w,
                      std::optional<const Ort::Custom::Tensor<float>*> b, std::optional<const Ort::Custom::Tensor<float>*> r,
                      std::optional<const Ort::Custom::Tensor<float>*> g, Ort::Custom::Tensor<float>& y) {
    try {
      if (form_ == Form::Invalid) return Ort::Status(FormRequirement, ORT_INVALID_ARGUMENT);
      if (!gate_.Valid()) return Ort::Status((std::string("WinogradConv: ") + RectifierGate::Requirement).c_str(), ORT_INVALID_ARGUMENT);
      const auto& xs = x.Shape();
      const auto& ws = w.Shape();
      if (xs.size() != 4 || !FilterShape(ws) || Inputs(swapped_, ws) != xs[1])
        return Ort::Status(swapped_ ? "WinogradConv: X must be [N, C, H, W] and W [C, K, 3, 3]" : "WinogradConv: X must be [N, C, H, W] and W [K, C, 3, 3]",
                           ORT_INVALID_ARGUMENT);
      const int64_t k = Outputs(swapped_, ws);
      const std::vector<int64_t> ys{xs[0], k, Sized(form_, xs[2], padding_[0]), Sized(form_, xs[3], padding_[1])};
      if (ys[2] < 0 || ys[3] < 0) return Ort::Status("WinogradConv: a transposed X must be at least one cell high and wide", ORT_INVALID_ARGUMENT);
      const Ort::Custom::Tensor<float>* bias = Given(b);
      const Ort::Custom::Tensor<float>* residual = Given(r);
      const Ort::Custom::Tensor<float>* gate = g.value_or(nullptr); // the last input: never left out as empty
      if (bias && bias->Shape() != std::vector<int64_t>{k}) return Ort::Status("WinogradConv: B must be [K] or empty", ORT_INVALID_ARGUMENT);
      if (residual && residual->Shape() != ys) return Ort::Status("WinogradConv: R must be Y's shape [N, K, ·, ·] or empty", ORT_INVALID_ARGUMENT);
      if (!gate_.Fits(gate)) return Ort::Status((std::string("WinogradConv: ") + RectifierGate::GateRequirement).c_str(), ORT_INVALID_ARGUMENT);
      if (gate && gate->Shape() != ys) return Ort::Status("WinogradConv: G must be Y's shape [N, K, ·, ·]", ORT_INVALID_ARGUMENT);
      float* out = y.Allocate(ys);
      FloatBuffer local;
      const float* u = filter_.data();
      if (filter_.empty() || outputs_ != k || inputs_ != xs[1]) {
        local = Transform(w.Data(), k, xs[1]);
        u = local.data();
      }
      auto run = [&](auto winograd) {
        using F = decltype(winograd);
        typename F::Job job{x.Data(), u, out, xs[0], xs[1], k, xs[2], xs[3], ys[2], ys[3]};
        job.bias = bias ? bias->Data() : nullptr;
        job.residual = residual ? residual->Data() : nullptr;
        job.relu = relu_;
        job.gate = gate ? gate->Data() : nullptr;
        job.rectifier = gate_;
        return F::Run(api_, context, job);
      };
      switch (form_) {
        case Form::Tile4: return run(Winograd<4>{});
        case Form::Down: return run(Winograd<2, Sampling::Down>{});
        case Form::Up: return run(Winograd<4, Sampling::Up>{});
        default: return run(Winograd<2>{});
      }
    } catch (const std::exception& e) {
      return Ort::Status(e.what(), ORT_FAIL);
    }
  }

 private:
  static bool FilterShape(const std::vector<int64_t>& w) { return w.size() == 4 && w[0] >= 0 && w[1] >= 0 && w[2] == 3 && w[3] == 3; }
  static bool ValidPadding(const std::vector<int64_t>& p) { return p.size() == 2 && p[0] >= 0 && p[0] <= 1 && p[1] >= 0 && p[1] <= 1; }

  // Y's channels and X's from W's shape: [K, C, 3, 3], or swapped (a transpose's) [C, K, 3, 3].
  static int64_t Outputs(bool swapped, const std::vector<int64_t>& w) { return swapped ? w[1] : w[0]; }
  static int64_t Inputs(bool swapped, const std::vector<int64_t>& w) { return swapped ? w[0] : w[1]; }

  // Y's size along an axis of `size` input cells (padding: the transpose's output_padding there).
  static int64_t Sized(Form form, int64_t size, int64_t padding) {
    return form == Form::Down ? CeilDiv(size, 2) : form == Form::Up ? 2 * size - 1 + padding : size;
  }

  FloatBuffer Transform(const float* w, int64_t k, int64_t c) const {
    switch (form_) {
      case Form::Tile4: return Winograd<4>::Transform(w, k, c, swapped_);
      case Form::Down: return Winograd<2, Sampling::Down>::Transform(w, k, c);
      case Form::Up: return Winograd<4, Sampling::Up>::Transform(w, k, c);
      default: return Winograd<2>::Transform(w, k, c, swapped_);
    }
  }

  const OrtApi* api_;
  FloatBuffer filter_;
  int64_t outputs_ = -1, inputs_ = -1;
  Form form_ = Form::Tile2;
  bool swapped_ = false; // transposed: W is [C, K, 3, 3]; at stride 1 read flipped
  std::vector<int64_t> padding_{0, 0};
  bool relu_ = false;
  RectifierGate gate_;
};

// Op's output shape as ONNX Runtime's graph transforms see it (its blocked layout takes an
// elementwise op only over operands of one known shape). Where Op cannot tell, the shape stays
// unknown and Compute reports what is wrong.
template <typename Op>
OrtStatus* ORT_API_CALL InferShape(const OrtCustomOp*, OrtShapeInferContext* raw) {
  try {
    Ort::ShapeInferContext context(&Ort::GetApi(), raw);
    Shape shape;
    return Op::OutputShape(context, shape) ? SetOutputShape(raw, shape) : nullptr;
  } catch (const std::exception&) {
    return nullptr;
  }
}

// A kernel on the CPU provider, with its own shape inference (see SetOutputShape).
template <typename Op>
std::unique_ptr<Ort::Custom::OrtLiteCustomOp> Kernel(const char* name) {
  std::unique_ptr<Ort::Custom::OrtLiteCustomOp> op{Ort::Custom::CreateLiteCustomOp<Op>(name, "CPUExecutionProvider")};
  op->InferOutputShapeFn = &InferShape<Op>;
  return op;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  try {
    Ort::InitApi(api_base->GetApi(ORT_API_VERSION));
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> max_pool_grad = Kernel<MaxPoolGrad>("MaxPoolGrad");
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> col2im = Kernel<Col2Im>("Col2Im");
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> depthwise_col2im = Kernel<DepthwiseCol2Im>("DepthwiseCol2Im");
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> sparse_conv_transpose = Kernel<SparseConvTranspose>("SparseConvTranspose");
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> sample_sum = Kernel<SampleSum>("SampleSum");
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> winograd_conv = Kernel<WinogradConv>("WinogradConv");
    static Ort::CustomOpDomain domain = [] {
      Ort::CustomOpDomain d{"ai.saliency"};
      d.Add(max_pool_grad.get());
      d.Add(col2im.get());
      d.Add(depthwise_col2im.get());
      d.Add(sparse_conv_transpose.get());
      d.Add(sample_sum.get());
      d.Add(winograd_conv.get());
      return d;
    }();
    Ort::UnownedSessionOptions(options).Add(domain);
    return nullptr;
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
  }
}
