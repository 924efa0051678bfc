//! C math functions for Hermit applications, appended to `libhermit.a`.
//!
//! std on Hermit calls the C math library (`sin`, `exp`, `lgamma_r`, ...) and Hermit has none; each
//! function here forwards to the pure-Rust `libm` crate. Only these unmangled C names stay visible
//! after the build tool prefixes everything else.
#![no_std]

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) -> $ret {
                libm::$name($($arg),*)
            }
        )*
    };
}

forward! {
    acos(x: f64) -> f64; acosf(x: f32) -> f32; acosh(x: f64) -> f64; acoshf(x: f32) -> f32;
    asin(x: f64) -> f64; asinf(x: f32) -> f32; asinh(x: f64) -> f64; asinhf(x: f32) -> f32;
    atan(x: f64) -> f64; atanf(x: f32) -> f32; atan2(y: f64, x: f64) -> f64; atan2f(y: f32, x: f32) -> f32;
    atanh(x: f64) -> f64; atanhf(x: f32) -> f32; cbrt(x: f64) -> f64; cbrtf(x: f32) -> f32;
    cos(x: f64) -> f64; cosf(x: f32) -> f32; cosh(x: f64) -> f64; coshf(x: f32) -> f32;
    erf(x: f64) -> f64; erff(x: f32) -> f32; erfc(x: f64) -> f64; erfcf(x: f32) -> f32;
    exp(x: f64) -> f64; expf(x: f32) -> f32; exp2(x: f64) -> f64; exp2f(x: f32) -> f32;
    expm1(x: f64) -> f64; expm1f(x: f32) -> f32; hypot(x: f64, y: f64) -> f64; hypotf(x: f32, y: f32) -> f32;
    log(x: f64) -> f64; logf(x: f32) -> f32; log10(x: f64) -> f64; log10f(x: f32) -> f32;
    log1p(x: f64) -> f64; log1pf(x: f32) -> f32; log2(x: f64) -> f64; log2f(x: f32) -> f32;
    pow(x: f64, y: f64) -> f64; powf(x: f32, y: f32) -> f32; sin(x: f64) -> f64; sinf(x: f32) -> f32;
    sinh(x: f64) -> f64; sinhf(x: f32) -> f32; tan(x: f64) -> f64; tanf(x: f32) -> f32;
    tanh(x: f64) -> f64; tanhf(x: f32) -> f32; tgamma(x: f64) -> f64; tgammaf(x: f32) -> f32;
}

/// `lgamma_r` returns the sign through a pointer in C.
///
/// # Safety
/// `sign` must be valid for a write of one `i32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lgamma_r(x: f64, sign: *mut i32) -> f64 {
    let (y, s) = libm::lgamma_r(x);
    // SAFETY: the caller passes a valid pointer, as the C signature requires.
    unsafe { sign.write(s) };
    y
}

/// `lgammaf_r`: as [`lgamma_r`], for `f32`.
///
/// # Safety
/// `sign` must be valid for a write of one `i32`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lgammaf_r(x: f32, sign: *mut i32) -> f32 {
    let (y, s) = libm::lgammaf_r(x);
    // SAFETY: as above.
    unsafe { sign.write(s) };
    y
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
