// Force-included into every mlx-c translation unit (see build.rs).
//
// mlx-c 0.7.0 formats a handful of I/O error messages with std::format, which
// libstdc++ only ships from GCC 13 on. On older toolchains we provide the tiny
// subset it uses: positional "{}" replacement with operator<< formatting.
#pragma once
#ifdef __cplusplus

#ifdef MLX_C_COMPAT_HALF
// mlx-c's half.h declares float16_t/bfloat16_t (and the accessors that use them)
// only on ARM. Elsewhere we pre-empt it with MLX's own 16-bit types, which have
// the same size and bit layout, so the float16/bfloat16 accessors exist on every
// target (mlx-rs calls them unconditionally).
#include "mlx/types/half_types.h"
#define MLX_HALF_H
#define HAS_FLOAT16
#define HAS_BFLOAT16
using float16_t = mlx::core::float16_t;
using bfloat16_t = mlx::core::bfloat16_t;
#endif
#if __has_include(<format>)
#include <format>
#endif
#if !defined(__cpp_lib_format)
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace mlx_c_compat {
inline void format_rest(std::ostringstream& out, std::string_view fmt) {
  out << fmt;
}
template <class T, class... Rest>
void format_rest(std::ostringstream& out, std::string_view fmt, T&& value,
                 Rest&&... rest) {
  auto hole = fmt.find("{}");
  if (hole == std::string_view::npos) {
    out << fmt;
    return;
  }
  out << fmt.substr(0, hole) << std::forward<T>(value);
  format_rest(out, fmt.substr(hole + 2), std::forward<Rest>(rest)...);
}
}  // namespace mlx_c_compat

namespace std {
template <class... Args>
std::string format(std::string_view fmt, Args&&... args) {
  std::ostringstream out;
  mlx_c_compat::format_rest(out, fmt, std::forward<Args>(args)...);
  return out.str();
}
}  // namespace std
#endif
#endif
