// Body of the allowed-token mask (see allowed.rs). MLX wraps it into
//   __global__ void custom_kernel_<name>_<T>_<V>(
//       const T* logits, const <uint32_t or int64_t>* words, float* out)
// with `T` (the logits' element type) and `V` (the vocabulary) as constants.
// logits [1, V] (row-contiguous); the ceil(V / 32) bit words: bit id % 32 of
// word id / 32 is set when id is allowed. They are `words` itself, or (with
// WORDS_MAPPED, from the header) pinned host memory at device address
// words[0] (words[1] is their count), read in place over the bus.
// One thread per id.
#ifdef WORDS_MAPPED
const uint32_t* bits = reinterpret_cast<const uint32_t*>(static_cast<unsigned long long>(words[0]));
#else
const uint32_t* bits = words;
#endif
const int id = blockIdx.x * blockDim.x + threadIdx.x;
if (id < V) {
  const bool allowed = (bits[id >> 5] >> (id & 31)) & 1u;
  out[id] = allowed ? static_cast<float>(logits[id]) : -__int_as_float(0x7f800000);
}
