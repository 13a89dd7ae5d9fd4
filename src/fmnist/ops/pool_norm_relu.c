/* MaxPool 2x2 -> BatchNorm (training: batch statistics) -> ReLU on bf16 channels-last activations, forward and
 * backward. fmnist.ops.pool_norm_relu compiles this file at first use and calls it through ctypes.
 *
 * Every stage of the modern recipes' `resnet` ends with this composition after its widening convolution.
 * PyTorch runs it as three kernels forward and three backward, the pool keeping int64 indices and the backward
 * filling a zeroed full-size gradient before scattering into it; here the forward reads the full-size input
 * once and the backward writes the full-size gradient once, zeros included, from a one-byte record of which
 * window position won. Numerics follow PyTorch's CPU kernels: the pool's maximum is updated by a value that is
 * larger or NaN (row-major order), the statistics are computed in double from the bf16 pooled values (mean first,
 * then the variance around it: no cancellation), the normalization is done in fp32 and rounded to bf16 once,
 * and the ReLU's gradient passes where its output is > 0. MaxPool's floor mode: an odd last row or column is
 * not pooled, and its gradient is 0.
 *
 * Layouts (all contiguous, NHWC: what a channels-last tensor holds):
 *   x, grad_in          [N, H, W, C]     bf16 bits (uint16)
 *   pooled, out, grad   [N, Ho, Wo, C]   bf16 bits; Ho = H / 2, Wo = W / 2 (rounded down)
 *   arg                 [N, Ho, Wo, C]   uint8: the winning position of the window, 0..3 (row-major)
 *   weight, bias, mean, invstd, var, grad_weight, grad_bias   [C] fp32
 *   scratch             [threads, 2, C]  double, per-thread sums
 * Work is split over images between `threads` OpenMP threads; sums are added thread by thread in order, so a
 * given thread count always gives the same bits.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#else /* built without OpenMP: one thread */
static inline int omp_get_thread_num(void) { return 0; }
#endif

static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* fp32 -> bf16, round to nearest even; a NaN stays a (quiet) NaN. Branch-free, so loops over it vectorize. */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

/* The inner loops, each over the C channels of one position, with restrict pointers so that they vectorize. */

static inline void pool_row(const uint16_t *restrict p00, const uint16_t *restrict p01,
                            const uint16_t *restrict p10, const uint16_t *restrict p11, int64_t C,
                            uint16_t *restrict pooled, uint8_t *restrict arg, float *restrict part) {
    for (int64_t c = 0; c < C; c++) {
        float best = from_bf16(p00[c]), v;
        uint8_t at = 0;
        v = from_bf16(p01[c]); if (v > best || isnan(v)) { best = v; at = 1; }
        v = from_bf16(p10[c]); if (v > best || isnan(v)) { best = v; at = 2; }
        v = from_bf16(p11[c]); if (v > best || isnan(v)) { best = v; at = 3; }
        pooled[c] = to_bf16(best);  /* exact: best is a bf16 value */
        arg[c] = at;
        part[c] += best;
    }
}

static inline void square_row(const uint16_t *restrict p, const float *restrict mean, int64_t C,
                              float *restrict part) {
    for (int64_t c = 0; c < C; c++) {
        const float d = from_bf16(p[c]) - mean[c];
        part[c] += d * d;
    }
}

static inline void normalize_row(const uint16_t *restrict p, const float *restrict scale,
                                 const float *restrict shift, int64_t C, uint16_t *restrict out) {
    for (int64_t c = 0; c < C; c++) {
        const float z = from_bf16(p[c]) * scale[c] + shift[c];
        out[c] = to_bf16(z > 0.0f || isnan(z) ? z : 0.0f);
    }
}

static inline void grad_sums_row(const uint16_t *restrict p, const uint16_t *restrict g,
                                 const float *restrict scale, const float *restrict shift,
                                 const float *restrict mean, int64_t C, float *restrict sum_g,
                                 float *restrict sum_gx) {
    for (int64_t c = 0; c < C; c++) {
        const float x = from_bf16(p[c]);
        const float gz = x * scale[c] + shift[c] > 0.0f ? from_bf16(g[c]) : 0.0f;
        sum_g[c] += gz;
        sum_gx[c] += gz * (x - mean[c]);
    }
}

static inline void grad_scatter_row(const uint16_t *restrict p, const uint16_t *restrict g,
                                    const uint8_t *restrict arg, const float *restrict scale,
                                    const float *restrict shift, const float *restrict mean,
                                    const float *restrict k0, const float *restrict k2, int64_t C,
                                    uint16_t *restrict q00, uint16_t *restrict q01, uint16_t *restrict q10,
                                    uint16_t *restrict q11) {
    for (int64_t c = 0; c < C; c++) {
        const float x = from_bf16(p[c]);
        const float gz = x * scale[c] + shift[c] > 0.0f ? from_bf16(g[c]) : 0.0f;
        const uint16_t v = to_bf16(scale[c] * gz + k0[c] + k2[c] * (x - mean[c]));
        const uint8_t at = arg[c];
        q00[c] = at == 0 ? v : 0;
        q01[c] = at == 1 ? v : 0;
        q10[c] = at == 2 ? v : 0;
        q11[c] = at == 3 ? v : 0;
    }
}

/* Per-thread float sums over image n's rows go into double accumulators, added over threads in order. */
static void reduce(const double *scratch, int threads, int row, int64_t C, double *out) {
    for (int64_t c = 0; c < C; c++) out[c] = 0.0;
    for (int t = 0; t < threads; t++)
        for (int64_t c = 0; c < C; c++) out[c] += scratch[((int64_t)t * 2 + row) * C + c];
}

int fmnist_pool_norm_relu_forward(const uint16_t *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                  const float *weight, const float *bias, float eps, uint16_t *pooled,
                                  uint8_t *arg, float *mean, float *invstd, float *var, uint16_t *out,
                                  double *scratch, int threads) {
    const int64_t Ho = H / 2, Wo = W / 2, M = N * Ho * Wo;
    if (N < 1 || C < 1 || Ho < 1 || Wo < 1 || threads < 1) return 1;
    /* Per-channel work arrays: sums (2C doubles), then mean, scale, shift (3C floats). */
    double *sum = malloc(sizeof(double) * (size_t)C);
    float *coef = malloc(sizeof(float) * (size_t)(3 * C));
    if (!sum || !coef) { free(sum); free(coef); return 2; }
    float *mu = coef, *scale = coef + C, *shift = coef + 2 * C;
    memset(scratch, 0, sizeof(double) * (size_t)(threads * 2 * C));

    /* Pass 1: pool, remember the winner, sum the pooled values per channel. */
#pragma omp parallel num_threads(threads)
    {
        double *acc = scratch + (int64_t)omp_get_thread_num() * 2 * C;
        float *part = malloc(sizeof(float) * (size_t)C);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            for (int64_t c = 0; c < C; c++) part[c] = 0.0f;
            for (int64_t i = 0; i < Ho; i++)
                for (int64_t j = 0; j < Wo; j++) {
                    const uint16_t *p00 = x + ((n * H + 2 * i) * W + 2 * j) * C;
                    const int64_t o = ((n * Ho + i) * Wo + j) * C;
                    pool_row(p00, p00 + C, p00 + W * C, p00 + W * C + C, C, pooled + o, arg + o, part);
                }
            for (int64_t c = 0; c < C; c++) acc[c] += part[c];
        }
        free(part);
    }
    reduce(scratch, threads, 0, C, sum);
    for (int64_t c = 0; c < C; c++) mu[c] = (float)(sum[c] / (double)M);

    /* Pass 2: the variance around the mean. */
#pragma omp parallel num_threads(threads)
    {
        double *acc = scratch + (int64_t)omp_get_thread_num() * 2 * C + C;
        float *part = malloc(sizeof(float) * (size_t)C);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            for (int64_t c = 0; c < C; c++) part[c] = 0.0f;
            for (int64_t k = 0; k < Ho * Wo; k++) square_row(pooled + (n * Ho * Wo + k) * C, mu, C, part);
            for (int64_t c = 0; c < C; c++) acc[c] += part[c];
        }
        free(part);
    }
    reduce(scratch, threads, 1, C, sum);
    for (int64_t c = 0; c < C; c++) {
        const double v = sum[c] / (double)M;
        mean[c] = mu[c];
        var[c] = (float)v;
        invstd[c] = (float)(1.0 / sqrt(v + (double)eps));
        scale[c] = invstd[c] * weight[c];
        shift[c] = bias[c] - mean[c] * scale[c];
    }

    /* Pass 3: normalize, ReLU, round once. */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < Ho * Wo; k++) {
            const int64_t o = (n * Ho * Wo + k) * C;
            normalize_row(pooled + o, scale, shift, C, out + o);
        }
    free(sum);
    free(coef);
    return 0;
}

int fmnist_pool_norm_relu_backward(const uint16_t *grad, const uint16_t *pooled, const uint8_t *arg, int64_t N,
                                   int64_t H, int64_t W, int64_t C, const float *weight, const float *bias,
                                   const float *mean, const float *invstd, uint16_t *grad_in, float *grad_weight,
                                   float *grad_bias, double *scratch, int threads) {
    const int64_t Ho = H / 2, Wo = W / 2, M = N * Ho * Wo;
    if (N < 1 || C < 1 || Ho < 1 || Wo < 1 || threads < 1) return 1;
    double *sum = malloc(sizeof(double) * (size_t)(2 * C));
    float *coef = malloc(sizeof(float) * (size_t)(4 * C));
    if (!sum || !coef) { free(sum); free(coef); return 2; }
    double *sum_g = sum, *sum_gx = sum + C;
    float *scale = coef, *shift = coef + C, *k0 = coef + 2 * C, *k2 = coef + 3 * C;
    for (int64_t c = 0; c < C; c++) {
        scale[c] = invstd[c] * weight[c];
        shift[c] = bias[c] - mean[c] * scale[c];
    }

    /* Pass 1: the ReLU's gradient gz, summed per channel, alone (the bias gradient) and times x - mean. */
    memset(scratch, 0, sizeof(double) * (size_t)(threads * 2 * C));
#pragma omp parallel num_threads(threads)
    {
        double *acc = scratch + (int64_t)omp_get_thread_num() * 2 * C;
        float *part = malloc(sizeof(float) * (size_t)(2 * C));
#pragma omp for schedule(static)
        for (int64_t n = 0; n < N; n++) {
            for (int64_t c = 0; c < 2 * C; c++) part[c] = 0.0f;
            for (int64_t k = 0; k < Ho * Wo; k++) {
                const int64_t o = (n * Ho * Wo + k) * C;
                grad_sums_row(pooled + o, grad + o, scale, shift, mean, C, part, part + C);
            }
            for (int64_t c = 0; c < 2 * C; c++) acc[c] += part[c];
        }
        free(part);
    }
    reduce(scratch, threads, 0, C, sum_g);
    reduce(scratch, threads, 1, C, sum_gx);
    /* d pooled = scale * (gz - sum(gz) / M - (x - mean) * invstd^2 * sum(gz * (x - mean)) / M) */
    for (int64_t c = 0; c < C; c++) {
        grad_bias[c] = (float)sum_g[c];
        grad_weight[c] = (float)(sum_gx[c] * invstd[c]);
        k0[c] = (float)(-scale[c] * sum_g[c] / (double)M);
        k2[c] = (float)(-scale[c] * sum_gx[c] * invstd[c] * invstd[c] / (double)M);
    }

    /* Pass 2: the pooled value's gradient, written to its window's winner; the rest of the window gets 0. */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++) {
        uint16_t *gi = grad_in + n * H * W * C;
        if (H % 2) memset(gi + (H - 1) * W * C, 0, sizeof(uint16_t) * (size_t)(W * C));
        for (int64_t i = 0; i < Ho; i++) {
            if (W % 2) {
                memset(gi + ((2 * i) * W + W - 1) * C, 0, sizeof(uint16_t) * (size_t)C);
                memset(gi + ((2 * i + 1) * W + W - 1) * C, 0, sizeof(uint16_t) * (size_t)C);
            }
            for (int64_t j = 0; j < Wo; j++) {
                const int64_t o = ((n * Ho + i) * Wo + j) * C;
                uint16_t *q00 = gi + ((2 * i) * W + 2 * j) * C;
                grad_scatter_row(pooled + o, grad + o, arg + o, scale, shift, mean, k0, k2, C, q00, q00 + C,
                                 q00 + W * C, q00 + W * C + C);
            }
        }
    }
    free(sum);
    free(coef);
    return 0;
}
