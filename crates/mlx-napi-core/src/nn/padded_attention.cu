// Body of the decode attention over a left-padded batch cache (see
// padded_attention.rs). MLX wraps it into
//   __global__ void custom_kernel_padded_decode_attention_<T>_<D>(
//       const T* q, Shape q_shape, Strides q_strides,
//       const T* k, Shape k_shape, Strides k_strides,
//       const T* v, Strides v_strides,
//       const int32_t* padding, T* out)
// with `T` (element type) and `D` (head size, a multiple of 32) as constants;
// `SCALE_LOG2` (the softmax scale times log2(e)) comes from the header.
//
// q [B, H, 1, D], k and v [B, Hkv, L, D] (any strides), padding [B]: row b
// attends to its keys padding[b] .. L-1 only. One block of WARPS warps per
// (head, row); warp w reads keys w, w + WARPS, ... with an online softmax, each
// lane holding D / 32 features; the warps' partial results are merged at the
// end through shared memory. Float accumulation throughout.
constexpr int PER_LANE = D / 32;
const int head = blockIdx.x;
const int row = blockIdx.y;
const int heads = q_shape[1];
const int kv_head = head / (heads / k_shape[1]);
const int keys = k_shape[2];
const int lane = threadIdx.x % 32;
const int warp = threadIdx.x / 32;

const T* qp = q + row * q_strides[0] + head * q_strides[1];
const T* kp = k + row * k_strides[0] + kv_head * k_strides[1];
const T* vp = v + row * v_strides[0] + kv_head * v_strides[1];

float query[PER_LANE];
float acc[PER_LANE];
for (int i = 0; i < PER_LANE; ++i) {
  query[i] = static_cast<float>(qp[(lane * PER_LANE + i) * q_strides[3]]) * SCALE_LOG2;
  acc[i] = 0.0f;
}
// Running maximum (base-2 logits) and sum of this warp's keys.
float top = -3.0e38f;
float sum = 0.0f;
for (int j = padding[row] + warp; j < keys; j += WARPS) {
  const T* kj = kp + j * k_strides[2];
  float score = 0.0f;
  for (int i = 0; i < PER_LANE; ++i) {
    score += query[i] * static_cast<float>(kj[(lane * PER_LANE + i) * k_strides[3]]);
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    score += __shfl_xor_sync(0xffffffff, score, offset);
  }
  const float new_top = fmaxf(top, score);
  const float rescale = exp2f(top - new_top);
  const float weight = exp2f(score - new_top);
  sum = sum * rescale + weight;
  const T* vj = vp + j * v_strides[2];
  for (int i = 0; i < PER_LANE; ++i) {
    acc[i] = acc[i] * rescale + weight * static_cast<float>(vj[(lane * PER_LANE + i) * v_strides[3]]);
  }
  top = new_top;
}

__shared__ float tops[WARPS];
__shared__ float sums[WARPS];
__shared__ float partial[WARPS][D];
if (lane == 0) {
  tops[warp] = top;
  sums[warp] = sum;
}
for (int i = 0; i < PER_LANE; ++i) {
  partial[warp][lane * PER_LANE + i] = acc[i];
}
__syncthreads();

// A warp that saw no key holds top = -3e38 and adds nothing below.
float best = -3.0e38f;
for (int w = 0; w < WARPS; ++w) {
  best = fmaxf(best, tops[w]);
}
float total = 0.0f;
for (int w = 0; w < WARPS; ++w) {
  total += sums[w] * exp2f(tops[w] - best);
}
T* op = out + (row * heads + head) * D;
for (int d = threadIdx.x; d < D; d += 32 * WARPS) {
  float value = 0.0f;
  for (int w = 0; w < WARPS; ++w) {
    value += partial[w][d] * exp2f(tops[w] - best);
  }
  op[d] = static_cast<T>(value / total);
}
