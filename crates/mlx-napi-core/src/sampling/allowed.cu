// Body of the allowed-token mask (see allowed.rs). MLX wraps it into
//   __global__ void custom_kernel_allowed_tokens_<T>_<V>(
//       const T* logits, const uint32_t* words, float* out)
// with `T` (the logits' element type) and `V` (the vocabulary) as constants.
// logits [1, V] (row-contiguous), words [ceil(V / 32)]: bit id % 32 of word
// id / 32 is set when id is allowed. One thread per id.
const int id = blockIdx.x * blockDim.x + threadIdx.x;
if (id < V) {
  const bool allowed = (words[id >> 5] >> (id & 31)) & 1u;
  out[id] = allowed ? static_cast<float>(logits[id]) : -__int_as_float(0x7f800000);
}
