/* Conv 3x3 (one input channel, stride 1, zero padding 0 or 1) -> MaxPool 2x2 -> ReLU, forward and backward,
 * in one pass over the image. fmnist.ops.conv_pool_relu compiles this file at first use and calls it through ctypes.
 *
 * The first block of `baseline` and `seed003` is this composition. PyTorch runs it as three kernels plus two
 * casts and keeps the 4x larger convolution output between them; here each pooled value is computed from its
 * four 3x3 patches and nothing else is written. Numerics follow PyTorch's CPU kernels: the convolution is
 * accumulated in fp32 (bias first, then the 9 taps in order), the pool takes the first maximum of its window in
 * row-major order (a NaN counts as a maximum), ReLU keeps NaN, and its gradient passes where the output is > 0.
 *
 * Layouts (all contiguous):
 *   x     [B, H, W]           fp32 images
 *   wt    [9, C]              fp32 weights, tap-major (PyTorch's [C, 1, 3, 3] transposed)
 *   out   [B, Ho, Wo, C]      fp32 or bf16 (NHWC, what a channels-last tensor holds)
 *   arg   [B, Ho, Wo, C]      uint8: which of the window's 4 positions won (0..3), or 4 where the ReLU output is 0
 *   grads gwt [9, C], gb [C]  fp32
 * C must be a multiple of LANES (16): the channels go in blocks of 16 fp32 lanes (GCC/Clang vector types:
 * one AVX-512 register, or two AVX2 ones), and a block's weights or gradient sums stay in registers while it
 * walks the images. Work is split over images between `threads` OpenMP threads (PyTorch's own libgomp, which the process has
 * already loaded). The backward pass sums each thread's share in its own buffer and adds the buffers in thread
 * order, so a given thread count always gives the same bits.
 */
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#else /* built without OpenMP (a compiler that lacks it): one thread */
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
#endif

#define TAPS 9
#define PHASES 4
#define LANES 16

typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));
typedef uint32_t vu __attribute__((vector_size(4 * LANES)));
typedef uint16_t vh __attribute__((vector_size(2 * LANES)));
typedef uint8_t vb __attribute__((vector_size(LANES)));

static inline vf load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline vf splat(float f) { return (vf){0} + f; }

static inline vf select(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }

/* fp32 -> bf16, round to nearest even; a NaN stays a (quiet) NaN. */
static inline vh to_bf16(vf f) {
    const vu u = (vu)f;
    const vu rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const vu nan = (vu)((u & 0x7fffffffu) > 0x7f800000u);
    return __builtin_convertvector((rounded & ~nan) | (((u >> 16) | 0x40u) & nan), vh);
}

static inline vf grad_at(const void *grad, int grad_bf16, int64_t at) {
    if (!grad_bf16) return load((const float *)grad + at);
    vh h;
    memcpy(&h, (const uint16_t *)grad + at, sizeof h);
    return (vf)(__builtin_convertvector(h, vu) << 16);
}

/* The 4x4 input window under pooled position (i, j), zero outside the image: the 3x3 patch of window
 * position d (conv output (2i + d / 2, 2j + d % 2)) starts at row d / 2, column d % 2 of it. */
static inline void window(const float *xb, int64_t H, int64_t W, int pad, int64_t i, int64_t j, float win[4][4]) {
    const int64_t r0 = 2 * i - pad, s0 = 2 * j - pad;
    for (int u = 0; u < 4; u++)
        for (int v = 0; v < 4; v++) {
            const int64_t r = r0 + u, s = s0 + v;
            win[u][v] = (r >= 0 && r < H && s >= 0 && s < W) ? xb[r * W + s] : 0.0f;
        }
}

static inline int64_t pooled(int64_t n, int pad) { return (n + 2 * pad - 2) / 2; }

int fmnist_conv_pool_relu_forward(const float *x, int64_t B, int64_t H, int64_t W, const float *wt,
                                  const float *bias, int64_t C, int pad, void *out, int out_bf16, uint8_t *arg,
                                  int threads) {
    const int64_t Ho = pooled(H, pad), Wo = pooled(W, pad);
    if (C <= 0 || C % LANES || Ho <= 0 || Wo <= 0 || threads <= 0) return 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * H * W;
        for (int64_t c0 = 0; c0 < C; c0 += LANES) {
            vf w[TAPS];
            for (int k = 0; k < TAPS; k++) w[k] = load(wt + k * C + c0);
            const vf bv = load(bias + c0);
            for (int64_t i = 0; i < Ho; i++)
                for (int64_t j = 0; j < Wo; j++) {
                    float win[4][4];
                    window(xb, H, W, pad, i, j, win);
                    vf best = bv;
                    vi which = (vi){0};
                    for (int d = 0; d < PHASES; d++) {
                        vf acc = bv;
                        for (int k = 0; k < TAPS; k++) acc += splat(win[d / 2 + k / 3][d % 2 + k % 3]) * w[k];
                        /* first maximum wins; a NaN counts as one (PyTorch's max_pool2d) */
                        const vi take = d == 0 ? ~(vi){0} : ((vi)(acc > best) | (vi)(acc != acc));
                        best = select(take, acc, best);
                        which = (take & d) | (which & ~take);
                    }
                    const vi alive = (vi)(best > splat(0.0f));
                    const vf r = select(alive | (vi)(best != best), best, splat(0.0f)); /* ReLU keeps NaN */
                    const int64_t o = ((b * Ho + i) * Wo + j) * C + c0;
                    const vb a = __builtin_convertvector((which & alive) | (((vi){0} + PHASES) & ~alive), vb);
                    memcpy(arg + o, &a, sizeof a);
                    if (out_bf16) {
                        const vh h = to_bf16(r);
                        memcpy((uint16_t *)out + o, &h, sizeof h);
                    } else {
                        memcpy((float *)out + o, &r, sizeof r);
                    }
                }
        }
    }
    return 0;
}

int fmnist_conv_pool_relu_backward(const float *x, int64_t B, int64_t H, int64_t W, int64_t C, int pad,
                                   const void *grad, int grad_bf16, const uint8_t *arg, float *gwt, float *gb,
                                   float *scratch, int threads) {
    const int64_t Ho = pooled(H, pad), Wo = pooled(W, pad);
    const int64_t per = (TAPS + 1) * C; /* one thread's sums: 9 taps x C, then C for the bias */
    if (C <= 0 || C % LANES || Ho <= 0 || Wo <= 0 || threads <= 0) return 1;
    memset(scratch, 0, sizeof(float) * per * threads); /* OpenMP may start fewer threads than asked */
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *sw = scratch + t * per, *sb = sw + TAPS * C;
        for (int64_t c0 = 0; c0 < C; c0 += LANES) {
            vf acc[TAPS], accb = (vf){0};
            for (int k = 0; k < TAPS; k++) acc[k] = (vf){0};
            for (int64_t b = B * t / nt; b < B * (t + 1) / nt; b++) {
                const float *xb = x + b * H * W;
                for (int64_t i = 0; i < Ho; i++)
                    for (int64_t j = 0; j < Wo; j++) {
                        const int64_t o = ((b * Ho + i) * Wo + j) * C + c0;
                        vb a8;
                        memcpy(&a8, arg + o, sizeof a8);
                        const vi a = __builtin_convertvector(a8, vi);
                        const vf g = grad_at(grad, grad_bf16, o);
                        /* the gradient goes to the window position that won; nowhere where the ReLU gave 0 */
                        vf gd[PHASES];
                        for (int d = 0; d < PHASES; d++) gd[d] = (vf)((vi)g & (a == d));
                        accb += (vf)((vi)g & (a < PHASES));
                        float win[4][4];
                        window(xb, H, W, pad, i, j, win);
                        for (int k = 0; k < TAPS; k++) {
                            const int kh = k / 3, kw = k % 3;
                            acc[k] += splat(win[kh][kw]) * gd[0] + splat(win[kh][kw + 1]) * gd[1] +
                                      splat(win[kh + 1][kw]) * gd[2] + splat(win[kh + 1][kw + 1]) * gd[3];
                        }
                    }
            }
            for (int k = 0; k < TAPS; k++) memcpy(sw + k * C + c0, &acc[k], sizeof acc[k]);
            memcpy(sb + c0, &accb, sizeof accb);
        }
    }
    memset(gwt, 0, sizeof(float) * TAPS * C);
    memset(gb, 0, sizeof(float) * C);
    for (int t = 0; t < threads; t++) {
        const float *sw = scratch + t * per, *sb = sw + TAPS * C;
        for (int64_t n = 0; n < TAPS * C; n++) gwt[n] += sw[n];
        for (int64_t c = 0; c < C; c++) gb[c] += sb[c];
    }
    return 0;
}
