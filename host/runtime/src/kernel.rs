//! The dense-layer kernel behind `wasmflow:plugin/tensor`: `y = max(x · W + b, 0)` in native
//! code. Inside the sandbox the same loops run 3–4× slower than natively (wasm has 128-bit SIMD
//! and no fused multiply-add), which is what this kernel is for (README, "### Plugins").
//!
//! Safe to call with anything: [`Dense::new`] and [`Dense::apply`] check every length against
//! the sizes (with overflow-checked products) before any arithmetic, so the `unsafe` calls below
//! only ever see slices of exactly the lengths they read and write.
//!
//! Batches of rows go to `matrixmultiply`'s sgemm (packed, cache-blocked, AVX2/FMA chosen at run
//! time); a few rows go to a row-at-a-time product over the weights, which reads `W` once per row
//! and skips the packing that would dominate a one-row request.

// The two places that need it: sgemm takes raw pointers, and the AVX2/FMA row product is a
// `#[target_feature]` function called after the CPU was checked to have those features.
#![allow(unsafe_code)]

use std::time::Instant;

/// Fewer rows than this take the row-at-a-time path; from here on sgemm's packing pays off.
const GEMM_ROWS: usize = 8;

/// Multiply-adds done between two looks at the deadline: a few milliseconds of one core, and
/// enough rows per sgemm call (256 of a 256 × 256 layer) that packing the weights, done once
/// per call, stays a small share.
const WORK_PER_CHECK: usize = 1 << 24;

/// Why a product was refused or stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// The sizes and the data disagree, or overflow; the message names the bad value.
    Invalid(String),
    /// The call's deadline passed mid-product.
    Deadline,
}

/// A dense layer's weights (`k × n`, row-major), bias and activation.
#[derive(Debug, Clone)]
pub struct Dense {
    k: usize,
    n: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    relu: bool,
}

impl Dense {
    /// Checks that `weights` holds `k·n` values and `bias`, when given, `n`.
    pub fn new(
        k: usize,
        n: usize,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> Result<Self, KernelError> {
        let expected = k
            .checked_mul(n)
            .ok_or_else(|| KernelError::Invalid(format!("a layer of {k} by {n} is too large")))?;
        if weights.len() != expected {
            return Err(KernelError::Invalid(format!(
                "a layer of {k} inputs by {n} outputs needs {expected} weights, not {}",
                weights.len()
            )));
        }
        if let Some(bias) = &bias
            && bias.len() != n
        {
            return Err(KernelError::Invalid(format!(
                "a layer of {n} outputs needs {n} bias values, not {}",
                bias.len()
            )));
        }
        Ok(Self {
            k,
            n,
            weights,
            bias,
            relu,
        })
    }

    pub fn inputs(&self) -> usize {
        self.k
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    /// Bytes the layer holds.
    pub fn bytes(&self) -> usize {
        (self.weights.len() + self.bias.as_ref().map_or(0, Vec::len)) * size_of::<f32>()
    }

    /// Bytes of the output of `rows` rows, or `None` when that overflows.
    pub fn output_bytes(&self, rows: usize) -> Option<usize> {
        rows.checked_mul(self.n)?.checked_mul(size_of::<f32>())
    }

    /// `rows` rows of `input` (`rows·k` values, row-major) through the layer: `rows·n` values.
    /// Stops with [`KernelError::Deadline`] once `deadline` has passed, checked every
    /// [`WORK_PER_CHECK`] multiply-adds, so that no guest can hold the host's CPU past its call's
    /// budget however large a product it asks for. The caller bounds the output's size.
    pub fn apply(
        &self,
        rows: usize,
        input: &[f32],
        deadline: Instant,
    ) -> Result<Vec<f32>, KernelError> {
        let expected = rows.checked_mul(self.k).ok_or_else(|| {
            KernelError::Invalid(format!("{rows} rows of {} values is too large", self.k))
        })?;
        if input.len() != expected {
            return Err(KernelError::Invalid(format!(
                "{rows} rows of {} values need {expected} values, not {}",
                self.k,
                input.len()
            )));
        }
        let out_len = rows.checked_mul(self.n).ok_or_else(|| {
            KernelError::Invalid(format!("{rows} rows of {} outputs is too large", self.n))
        })?;
        let mut out = vec![0f32; out_len];
        if out_len == 0 {
            return Ok(out);
        }
        // Rows per deadline check; at least one (a row's work is bounded by the weights, which
        // the instance's memory limit bounds).
        let per_row = self.k.saturating_mul(self.n).max(1);
        let chunk = (WORK_PER_CHECK / per_row).max(1);
        for start in (0..rows).step_by(chunk) {
            if Instant::now() >= deadline {
                return Err(KernelError::Deadline);
            }
            let end = rows.min(start + chunk);
            self.apply_chunk(
                &input[start * self.k..end * self.k],
                &mut out[start * self.n..end * self.n],
            );
        }
        Ok(out)
    }

    /// One chunk: `y.len() / n` rows; `x` holds exactly as many rows of `k`.
    fn apply_chunk(&self, x: &[f32], y: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        let rows = y.len() / n;
        debug_assert_eq!(x.len(), rows * k);
        match &self.bias {
            Some(bias) => y.chunks_exact_mut(n).for_each(|r| r.copy_from_slice(bias)),
            None => y.fill(0.0),
        }
        if k > 0 {
            if rows < GEMM_ROWS {
                for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
                    row_product(xr, &self.weights, yr);
                }
            } else {
                // SAFETY: `x` holds rows·k values, `weights` k·n (checked in `new`) and `y`
                // rows·n, all row-major with the strides given; `y` aliases neither input.
                unsafe {
                    matrixmultiply::sgemm(
                        rows,
                        k,
                        n,
                        1.0,
                        x.as_ptr(),
                        k as isize,
                        1,
                        self.weights.as_ptr(),
                        n as isize,
                        1,
                        1.0,
                        y.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
        }
        if self.relu {
            // `max` maps NaN to 0 as ONNX's Relu does not; keep NaN as tract does. A select, not
            // `if *v < 0.0 { *v = 0.0 }`: that conditional store compiled to a branch per value
            // and was 40% of a 1,000-row call (perf, README "Plugins"); this one vectorizes.
            y.iter_mut()
                .for_each(|v| *v = if *v < 0.0 { 0.0 } else { *v });
        }
    }
}

/// `y += x · W` for one row: `x` has k values, `W` k·n (row-major), `y` n.
fn row_product(x: &[f32], w: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { row_product_avx512(x, w, y) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            unsafe { row_product_avx2(x, w, y) };
            return;
        }
    }
    row_product_blocked::<false, 64>(x, w, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn row_product_avx512(x: &[f32], w: &[f32], y: &mut [f32]) {
    // 8 of the 32 zmm registers.
    row_product_blocked::<true, 128>(x, w, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_product_avx2(x: &[f32], w: &[f32], y: &mut [f32]) {
    // 8 of the 16 ymm registers.
    row_product_blocked::<true, 64>(x, w, y);
}

/// The row product, compiled into each caller with its target features. Blocks of `BLOCK`
/// outputs are summed in a local array the compiler keeps in vector registers over all k
/// inputs, and stored once: the plain loop (`y[j] += x[i]·W[i][j]` for each i) loaded and stored
/// all of `y` for every input, which made it ~35% slower than tract's own gemv kernel at one row
/// (perf, README "Plugins"). Eight registers of sums are eight independent chains of
/// multiply-adds, enough to hide their latency. `FMA`: fused multiply-adds, only where the CPU
/// has them (elsewhere `mul_add` is a slow library call).
#[inline(always)]
fn row_product_blocked<const FMA: bool, const BLOCK: usize>(x: &[f32], w: &[f32], y: &mut [f32]) {
    let n = y.len();
    let blocked = n - n % BLOCK;
    for start in (0..blocked).step_by(BLOCK) {
        let out: &mut [f32; BLOCK] = (&mut y[start..start + BLOCK]).try_into().unwrap();
        let mut acc = *out;
        for (&xi, wi) in x.iter().zip(w.chunks_exact(n)) {
            let wi: &[f32; BLOCK] = wi[start..start + BLOCK].try_into().unwrap();
            for (a, &wij) in acc.iter_mut().zip(wi) {
                *a = madd::<FMA>(wij, xi, *a);
            }
        }
        *out = acc;
    }
    if blocked < n {
        let tail = &mut y[blocked..];
        for (&xi, wi) in x.iter().zip(w.chunks_exact(n)) {
            for (yj, &wij) in tail.iter_mut().zip(&wi[blocked..]) {
                *yj = madd::<FMA>(wij, xi, *yj);
            }
        }
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { c + a * b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The definition, in f64, for comparison.
    fn naive(
        rows: usize,
        k: usize,
        n: usize,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        relu: bool,
    ) -> Vec<f32> {
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let mut acc = b.map_or(0.0, |b| b[j] as f64);
                for i in 0..k {
                    acc += x[r * k + i] as f64 * w[i * n + j] as f64;
                }
                if relu && acc < 0.0 {
                    acc = 0.0;
                }
                out[r * n + j] = acc as f32;
            }
        }
        out
    }

    #[test]
    fn matches_the_naive_product_on_both_paths() {
        // Row counts on either side of GEMM_ROWS and of a deadline chunk; odd sizes that are
        // not multiples of any SIMD width.
        for &(rows, k, n) in &[
            (1, 64, 256),
            (2, 33, 200),
            (3, 7, 5),
            (GEMM_ROWS - 1, 33, 17),
            (GEMM_ROWS, 33, 17),
            (100, 64, 10),
            (129, 256, 256),
            (5, 1, 1),
            (9, 0, 4),
        ] {
            for (bias, relu) in [(false, false), (true, false), (true, true), (false, true)] {
                let x = values(rows * k, 1);
                let w = values(k * n, 2);
                let b = bias.then(|| values(n, 3));
                let layer = Dense::new(k, n, w.clone(), b.clone(), relu).unwrap();
                let got = layer.apply(rows, &x, far()).unwrap();
                let want = naive(rows, k, n, &x, &w, b.as_deref(), relu);
                assert_eq!(got.len(), want.len());
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-4,
                    "{rows}x{k}x{n} bias={bias} relu={relu}: off by {worst}"
                );
                if relu {
                    assert!(got.iter().all(|v| *v >= 0.0));
                }
            }
        }
    }

    #[test]
    fn relu_keeps_nan_as_tract_does() {
        let layer = Dense::new(1, 2, vec![1.0, -1.0], None, true).unwrap();
        let out = layer.apply(1, &[f32::NAN], far()).unwrap();
        assert!(out.iter().all(|v| v.is_nan()), "{out:?}");
    }

    #[test]
    fn lengths_that_disagree_with_the_sizes_are_refused() {
        let e = Dense::new(3, 4, vec![0.0; 11], None, false).unwrap_err();
        assert_eq!(
            e,
            KernelError::Invalid(
                "a layer of 3 inputs by 4 outputs needs 12 weights, not 11".into()
            )
        );
        let e = Dense::new(3, 4, vec![0.0; 12], Some(vec![0.0; 3]), false).unwrap_err();
        assert!(matches!(e, KernelError::Invalid(m) if m.contains("needs 4 bias values, not 3")));
        let e = Dense::new(usize::MAX, 2, Vec::new(), None, false).unwrap_err();
        assert!(matches!(e, KernelError::Invalid(m) if m.contains("too large")));

        let layer = Dense::new(3, 4, vec![0.0; 12], None, false).unwrap();
        let e = layer.apply(2, &[0.0; 5], far()).unwrap_err();
        assert_eq!(
            e,
            KernelError::Invalid("2 rows of 3 values need 6 values, not 5".into())
        );
        let e = layer.apply(usize::MAX, &[], far()).unwrap_err();
        assert!(matches!(e, KernelError::Invalid(m) if m.contains("too large")));
        assert_eq!(layer.output_bytes(usize::MAX), None);
        assert_eq!(layer.apply(0, &[], far()).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn a_passed_deadline_stops_the_product() {
        let layer = Dense::new(64, 64, vec![0.5; 64 * 64], None, false).unwrap();
        let e = layer
            .apply(4096, &vec![1.0; 4096 * 64], Instant::now())
            .unwrap_err();
        assert_eq!(e, KernelError::Deadline);
    }
}
