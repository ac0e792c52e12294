// The cdrmix::wkv6_* and cdrmix::wkv7_* ops on CUDA (or ROCm) tensors: shape
// and dtype checks, then the kernels in kernels/. Registered into PyTorch's
// dispatcher under the CPU kernels' names, so the inputs' device picks them.
//
// Each forward returns, as its third output, what its own backward needs (an
// opaque float32 buffer, not the CPU kernels' chunk states): RWKV-7 keeps the
// state at every chunk end and S_{t-1} a_t per step; RWKV-6 keeps s0 and s_final.
#include "kernels/wkv_cuda.hpp"

#include <ATen/ATen.h>
#include <torch/library.h>

#if defined(CDRMIX_HIP)
#include <ATen/hip/impl/HIPGuardImplMasqueradingAsCUDA.h>
#include <ATen/hip/impl/HIPStreamMasqueradingAsCUDA.h>
#define CDRMIX_CURRENT_STREAM() c10::hip::getCurrentHIPStreamMasqueradingAsCUDA().stream()
using DeviceGuard = c10::hip::HIPGuardMasqueradingAsCUDA;
#else
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define CDRMIX_CURRENT_STREAM() c10::cuda::getCurrentCUDAStream().stream()
using DeviceGuard = c10::cuda::CUDAGuard;
#endif

namespace cdrmix::gpu {

namespace {

using at::Tensor;

DType dtype_of(const Tensor &t, const char *op) {
    switch (t.scalar_type()) {
    case at::kFloat: return DType::F32;
    case at::kBFloat16: return DType::BF16;
    case at::kHalf: return DType::F16;
    default: TORCH_CHECK(false, op, " on CUDA takes float32, bfloat16 or float16 inputs, got ", t.scalar_type());
    }
}

WkvDims check_inputs(const char *op, const Tensor &r, std::initializer_list<const Tensor *> same) {
    TORCH_CHECK(r.dim() == 4, op, ": expected inputs of shape [B,T,H,N], got ", r.sizes());
    TORCH_CHECK(r.is_cuda() && r.is_contiguous(), op, ": inputs must be contiguous CUDA tensors");
    for (const Tensor *t : same)
        TORCH_CHECK(t->sizes() == r.sizes() && t->scalar_type() == r.scalar_type() && t->is_contiguous() &&
                        t->device() == r.device(),
                    op, ": all inputs must be contiguous with the same shape, dtype and device as r");
    const WkvDims d{int(r.size(0)), int(r.size(1)), int(r.size(2)), int(r.size(3))};
    TORCH_CHECK(wkv_head_size_supported(d.N), op, ": head size ", d.N, " has no GPU kernel (16, 32 or 64)");
    return d;
}

void check_state(const char *op, const Tensor &s, const WkvDims &d, const Tensor &r) {
    TORCH_CHECK(s.sizes() == at::IntArrayRef({d.B, d.H, d.N, d.N}) && s.scalar_type() == at::kFloat &&
                    s.is_contiguous() && s.device() == r.device(),
                op, ": state must be a contiguous float32 [B,H,N,N] tensor on the inputs' device");
}

float *fptr(const Tensor &t) { return t.data_ptr<float>(); }

// ---- RWKV-7 -------------------------------------------------------------------

int64_t chunks_of(const WkvDims &d, int64_t chunk) { return (d.T + chunk - 1) / chunk; }

std::tuple<Tensor, Tensor, Tensor> wkv7_forward_cuda(const Tensor &r, const Tensor &w, const Tensor &k,
                                                     const Tensor &v, const Tensor &a, const Tensor &b,
                                                     const Tensor &s0, int64_t chunk) {
    const WkvDims d = check_inputs("wkv7", r, {&w, &k, &v, &a, &b});
    check_state("wkv7", s0, d, r);
    DeviceGuard guard(r.device());
    Tensor y = at::empty_like(r), s_final = at::empty_like(s0);
    // saved = [states: B*H*NC*N*N | sa: B*T*H*N]
    const int64_t n_states = chunk > 0 ? int64_t(d.B) * d.H * chunks_of(d, chunk) * d.N * d.N : 0;
    Tensor saved = at::empty({chunk > 0 ? n_states + r.numel() : 0}, s0.options());
    float *states = chunk > 0 ? fptr(saved) : nullptr;
    wkv7_forward(dtype_of(r, "wkv7"), d, r.data_ptr(), w.data_ptr(), k.data_ptr(), v.data_ptr(), a.data_ptr(),
                 b.data_ptr(), fptr(s0), y.data_ptr(), fptr(s_final), states, states ? states + n_states : nullptr,
                 int(chunk), CDRMIX_CURRENT_STREAM());
    return {y, s_final, saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
wkv7_backward_cuda(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &a,
                   const Tensor &b, const Tensor &saved, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    const WkvDims d = check_inputs("wkv7_backward", r, {&w, &k, &v, &a, &b, &dy});
    check_state("wkv7_backward", ds, d, r);
    TORCH_CHECK(chunk > 0, "wkv7_backward: chunk must be positive");
    const int64_t n_states = int64_t(d.B) * d.H * chunks_of(d, chunk) * d.N * d.N;
    TORCH_CHECK(saved.numel() == n_states + r.numel() && saved.scalar_type() == at::kFloat,
                "wkv7_backward: saved tensors do not come from the CUDA forward with this chunk");
    DeviceGuard guard(r.device());
    Tensor dr = at::empty_like(r), dw = at::empty_like(r), dk = at::empty_like(r), dv = at::empty_like(r),
           da = at::empty_like(r), db = at::empty_like(r), ds0 = at::empty_like(ds);
    wkv7_backward(dtype_of(r, "wkv7_backward"), d, r.data_ptr(), w.data_ptr(), k.data_ptr(), v.data_ptr(),
                  a.data_ptr(), b.data_ptr(), fptr(saved), fptr(saved) + n_states, dy.data_ptr(), fptr(ds),
                  dr.data_ptr(), dw.data_ptr(), dk.data_ptr(), dv.data_ptr(), da.data_ptr(), db.data_ptr(),
                  fptr(ds0), int(chunk), CDRMIX_CURRENT_STREAM());
    return {dr, dw, dk, dv, da, db, ds0};
}

// ---- RWKV-6 -------------------------------------------------------------------

// u may be kept in another precision than r (a float32 parameter under bf16 autocast, say).
Tensor bonus_as_r(const char *op, const Tensor &u, const WkvDims &d, const Tensor &r) {
    TORCH_CHECK(u.sizes() == at::IntArrayRef({d.H, d.N}) && u.device() == r.device(),
                op, ": u must be an [H,N] tensor on r's device");
    return u.to(r.scalar_type()).contiguous();
}

std::tuple<Tensor, Tensor, Tensor> wkv6_forward_cuda(const Tensor &r, const Tensor &w, const Tensor &k,
                                                     const Tensor &v, const Tensor &u, const Tensor &s0,
                                                     int64_t chunk) {
    const WkvDims d = check_inputs("wkv6", r, {&w, &k, &v});
    const Tensor ur = bonus_as_r("wkv6", u, d, r);
    check_state("wkv6", s0, d, r);
    DeviceGuard guard(r.device());
    Tensor y = at::empty_like(r);
    // saved = [s0; s_final]; the final state is the second half, returned as a view.
    Tensor saved = at::empty({chunk > 0 ? 2 : 1, d.B, d.H, d.N, d.N}, s0.options());
    Tensor s_final = saved[chunk > 0 ? 1 : 0];
    wkv6_forward(dtype_of(r, "wkv6"), d, r.data_ptr(), w.data_ptr(), k.data_ptr(), v.data_ptr(), ur.data_ptr(),
                 fptr(s0), y.data_ptr(), fptr(s_final), CDRMIX_CURRENT_STREAM());
    if (chunk <= 0) return {y, s_final, at::empty({0}, s0.options())};
    saved[0].copy_(s0);
    return {y, s_final.clone(), saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
wkv6_backward_cuda(const Tensor &r, const Tensor &w, const Tensor &k, const Tensor &v, const Tensor &u,
                   const Tensor &saved, const Tensor &dy, const Tensor &ds, int64_t chunk) {
    const WkvDims d = check_inputs("wkv6_backward", r, {&w, &k, &v, &dy});
    const Tensor ur = bonus_as_r("wkv6_backward", u, d, r);
    check_state("wkv6_backward", ds, d, r);
    TORCH_CHECK(chunk > 0 && saved.dim() == 5 && saved.size(0) == 2 && saved.scalar_type() == at::kFloat,
                "wkv6_backward: saved tensors do not come from the CUDA forward");
    DeviceGuard guard(r.device());
    Tensor s0 = saved[0].contiguous();
    Tensor dr = at::empty_like(r), dw = at::empty_like(r), dk = at::empty_like(r), dv = at::empty_like(r),
           ds0 = at::empty_like(ds);
    Tensor du_partial = at::empty({d.B, d.H, d.N}, ds.options());
    Tensor scratch = at::empty(r.sizes(), ds.options());
    wkv6_backward(dtype_of(r, "wkv6_backward"), d, r.data_ptr(), w.data_ptr(), k.data_ptr(), v.data_ptr(),
                  ur.data_ptr(), fptr(s0), dy.data_ptr(), fptr(ds), dr.data_ptr(), dw.data_ptr(), dk.data_ptr(),
                  dv.data_ptr(), fptr(du_partial), fptr(ds0), fptr(scratch), CDRMIX_CURRENT_STREAM());
    return {dr, dw, dk, dv, du_partial.sum(0).to(u.scalar_type()), ds0};
}

} // namespace

TORCH_LIBRARY_IMPL(cdrmix, CUDA, m) {
    m.impl("wkv7_forward", &wkv7_forward_cuda);
    m.impl("wkv7_backward", &wkv7_backward_cuda);
    m.impl("wkv6_forward", &wkv6_forward_cuda);
    m.impl("wkv6_backward", &wkv6_backward_cuda);
}

} // namespace cdrmix::gpu
