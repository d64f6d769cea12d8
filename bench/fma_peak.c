// The host's peak float32 rate: every core running independent fused multiply-adds, nothing else.
// A convolution, a forward or a backward cannot go faster; bench/analysis.md divides the measured
// passes' FLOPs by this figure to say how far below the hardware's limit they run.
//
//   gcc -O3 -pthread bench/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak [THREADS=cores] [SECONDS=2]
//
// AVX2 (8 lanes) always; AVX-512 (16 lanes) too where the CPU has it. Twelve chains per thread
// cover the FMA units' latency (4–5 cycles, two units), so the units, not the chains, set the rate.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHAINS 12
#define BLOCK 1000000L

typedef struct {
  int wide;
  double seconds;
  long blocks;
  float sink;
} Work;

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// BLOCK multiply-adds on each of CHAINS vectors of `lanes` floats (GCC's vector types, contracted
// to fused multiply-adds), built for one ISA.
#define FMA_BLOCK(name, isa, lanes)                                        \
  __attribute__((target(isa))) static float name(float seed) {            \
    typedef float Vector __attribute__((vector_size(lanes * 4)));         \
    Vector a[CHAINS];                                                     \
    const Vector m = (Vector){0} + 0.999999f, c = (Vector){0} + 1e-7f;    \
    for (int i = 0; i < CHAINS; i++) a[i] = (Vector){0} + (seed + i);     \
    for (long n = 0; n < BLOCK; n++)                                      \
      for (int i = 0; i < CHAINS; i++) a[i] = a[i] * m + c;               \
    float s = 0;                                                          \
    for (int i = 0; i < CHAINS; i++) s += a[i][0];                        \
    return s;                                                             \
  }

FMA_BLOCK(Avx2Block, "avx2,fma", 8)
FMA_BLOCK(Avx512Block, "avx512f", 16)

static void* Run(void* argument) {
  Work* w = argument;
  double end = Now() + w->seconds;
  for (w->blocks = 0; Now() < end; w->blocks++) w->sink += w->wide ? Avx512Block(w->sink) : Avx2Block(w->sink);
  return NULL;
}

static void Measure(int wide, int threads, double seconds) {
  pthread_t thread[256];
  Work work[256] = {0};
  double start = Now();
  for (int i = 0; i < threads; i++) {
    work[i] = (Work){wide, seconds, 0, (float)i};
    pthread_create(&thread[i], NULL, Run, &work[i]);
  }
  double flops = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(thread[i], NULL);
    flops += work[i].blocks * (double)BLOCK * CHAINS * (wide ? 16 : 8) * 2;
  }
  double elapsed = Now() - start;
  printf("{\"isa\":\"%s\",\"threads\":%d,\"gflops\":%.1f,\"per_thread\":%.1f}\n", wide ? "avx512" : "avx2", threads,
         flops / elapsed / 1e9, flops / elapsed / 1e9 / threads);
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
  double seconds = argc > 2 ? atof(argv[2]) : 2;
  if (threads < 1 || threads > 256) threads = 1;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return puts("{\"error\":\"no AVX2 and FMA\"}"), 1;
  Measure(0, 1, seconds);
  Measure(0, threads, seconds);
  if (__builtin_cpu_supports("avx512f")) {
    Measure(1, 1, seconds);
    Measure(1, threads, seconds);
  }
  return 0;
}
