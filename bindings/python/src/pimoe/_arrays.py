# SPDX-License-Identifier: MIT
"""Turns the caller's tensors into NumPy views of the same memory, never copies, and says clearly what is wrong with
one that cannot be used as it is."""
import numpy as np


def as_view(obj, name):
    """A NumPy array over obj's own memory: obj itself if it is an ndarray, else a view through DLPack (a PyTorch CPU
    tensor, ...) or the array interface (__array_interface__ / __array_struct__). Anything else is refused (a list
    would need a copy): TypeError naming the argument."""
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "__dlpack__"):
        try:
            return np.from_dlpack(obj)
        except (RuntimeError, TypeError, ValueError, BufferError) as e:
            raise TypeError(f"{name}: its DLPack export failed ({e}); pass a CPU tensor that needs no gradient, "
                            "e.g. tensor.detach()") from e
    if hasattr(obj, "__array_interface__") or hasattr(obj, "__array_struct__"):
        view = np.asarray(obj)  # the interface describes existing memory: no copy
        return view
    raise TypeError(f"{name}: expected a float32 array (a NumPy array, or an object exposing DLPack or "
                    f"__array_interface__, such as a PyTorch CPU tensor), got {type(obj).__name__}")


def checked(obj, name, dtype, writable=False, shape=None):
    """as_view(obj) checked for dtype, C-contiguity, writability and (when given) shape: TypeError for the wrong
    kind of thing or dtype, ValueError for a usable kind in the wrong layout or shape."""
    view = as_view(obj, name)
    if view.dtype != dtype:
        raise TypeError(f"{name}: dtype {view.dtype}, expected {np.dtype(dtype)} (convert explicitly, e.g. "
                        f"x.astype(np.{np.dtype(dtype)}); the library never converts or copies)")
    if not view.flags.c_contiguous:
        raise ValueError(f"{name}: not C-contiguous (strides {view.strides}); pass np.ascontiguousarray(...) or "
                         "tensor.contiguous()")
    if writable and not view.flags.writeable:
        raise ValueError(f"{name}: read-only memory, but the library writes its results there")
    if shape is not None and tuple(view.shape) != tuple(shape):
        raise ValueError(f"{name}: shape {tuple(view.shape)}, expected {tuple(shape)}")
    return view
