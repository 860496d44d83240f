//! Runtime choice of instruction set for a kernel body.

/// Defines `fn $name` that runs a kernel body compiled for AVX-512, for AVX2 + FMA or
/// for the x86-64 baseline, whichever the CPU running it supports.
///
/// The crates build for baseline x86-64, so `#[inline(always)]` bodies made of this
/// crate's functions are compiled three times, once into each version. The CPU is asked
/// on every call; std caches the answer, so that costs a load and a test.
///
/// Two forms:
/// - `dispatch!(pub fn swiglu(g: &[f32], out: &mut [f32]) => swiglu_body);` runs the
///   same body in every version;
/// - `dispatch!(fn run(x: &[f32]) => run_body::<MulAdd>);` runs `run_body::<F>` with
///   `F =` [`Fused`](crate::Fused) where the CPU has FMA and [`Unfused`](crate::Unfused)
///   on the baseline.
///
/// Arguments are plain `name: type` pairs and the function returns `()`.
#[macro_export]
macro_rules! dispatch {
    (@define [$(#[$attr:meta])*] [$vis:vis] $name:ident [$($arg:ident: $ty:ty),*]
        [$($fast:tt)*] [$($base:tt)*]) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $($fast)*($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $($fast)*($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features `avx512` was compiled for
                    // (AVX-512F implies AVX2 and FMA).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $($base)*($($arg),*)
        }
    };
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?)
        => $body:ident::<MulAdd>) => {
        $crate::dispatch!(@define [$(#[$attr])*] [$vis] $name [$($arg: $ty),*]
            [$body::<$crate::Fused>] [$body::<$crate::Unfused>]);
    };
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?)
        => $body:ident) => {
        $crate::dispatch!(@define [$(#[$attr])*] [$vis] $name [$($arg: $ty),*]
            [$body] [$body]);
    };
}

#[cfg(test)]
mod tests {
    use crate::{dot_mul_add, MulAdd};

    #[inline(always)]
    fn dot_body<F: MulAdd>(a: &[f32], b: &[f32], out: &mut f32) {
        *out = dot_mul_add::<F>(a, b);
    }

    #[inline(always)]
    fn double_body(xs: &mut [f32]) {
        for x in xs {
            *x *= 2.0;
        }
    }

    crate::dispatch!(
        /// A generic body.
        fn dot_any(a: &[f32], b: &[f32], out: &mut f32) => dot_body::<MulAdd>
    );

    crate::dispatch!(fn double(xs: &mut [f32]) => double_body);

    #[test]
    fn both_forms_run_their_body() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let mut d = 0.0;
        dot_any(&a, &a, &mut d);
        assert_eq!(d, (0..37).map(|i| (i * i) as f32).sum::<f32>());
        let mut xs = a.clone();
        double(&mut xs);
        assert!(xs.iter().zip(&a).all(|(x, a)| *x == 2.0 * a));
    }
}
