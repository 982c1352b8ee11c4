"""mlx-lm 0.32.2 on MLX 0.32.2: one call that does not match.

mlx-lm 0.32.2's `QuantizedSwitchLinear.__call__` (the experts of every
quantized MoE model: Qwen3-MoE, Mixtral, …) passes `global_scale=` to
`mx.gather_qmm`, an argument MLX 0.32.2 does not have (its wheel metadata asks
for `mlx>=0.32.2` on macOS only), so any quantized MoE fails on its first
forward pass with "gather_qmm(): incompatible function arguments". Where MLX
lacks the argument, `patch()` gives the class the same method without it (the
value is None unless the checkpoint is nvfp4 with per-expert tensor scales,
which MLX 0.32.2 cannot run anyway): same kernel, same arguments, no extra
Python per call. Found on the CPU with the random Qwen3-30B-A3B 4-bit shape of
issue #16 (benchmark/models/make_random_mlx.py).
"""
import mlx.core as mx


def patch():
    """Returns True when the method was replaced."""
    if "global_scale" in (mx.gather_qmm.__doc__ or ""):
        return False
    from mlx_lm.models import switch_layers

    def __call__(self, x, indices, sorted_indices=False):
        if self.global_scale is not None:
            raise NotImplementedError(f"MLX {mx.__version__}: gather_qmm has no global_scale")
        x = mx.gather_qmm(
            x,
            self["weight"],
            self["scales"],
            self.get("biases"),
            rhs_indices=indices,
            transpose=True,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
            sorted_indices=sorted_indices,
        )
        if "bias" in self:
            x = x + mx.expand_dims(self["bias"][indices], -2)
        return x

    switch_layers.QuantizedSwitchLinear.__call__ = __call__
    return True
