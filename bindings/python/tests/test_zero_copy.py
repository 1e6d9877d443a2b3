# SPDX-License-Identifier: MIT
"""Zero copy, checked against what the C library was actually given: the probe (forward_probe.c, preloaded by
ctest) interposes pimoe_forward and pimoe_forward_routing and records the buffer pointers the extension passed.
Each test compares them with the addresses of the caller's own arrays or tensors. Also: what cannot be used without
a copy is refused with an error naming the argument."""
import ctypes
import os

import numpy as np
import pytest

import pimoe
from conftest import basic_options, random_input


@pytest.fixture(scope="module")
def probe():
    path = os.environ.get("PIMOE_PYTHON_PROBE")
    if not path:
        pytest.skip("PIMOE_PYTHON_PROBE is not set (the preloaded zero-copy probe; ctest python_pytest sets it)")
    assert path in os.environ.get("LD_PRELOAD", ""), "the probe must be preloaded (LD_PRELOAD) to see the calls"
    lib = ctypes.CDLL(path)
    lib.pimoe_python_probe_last.argtypes = [ctypes.POINTER(ctypes.c_uint64)]

    def last():
        out = (ctypes.c_uint64 * 6)()
        assert lib.pimoe_python_probe_last(out) == 1
        return list(out)

    return last


@pytest.fixture(scope="module")
def model():
    with pimoe.Model(basic_options()) as m:
        yield m


def address(a):
    return a.__array_interface__["data"][0]


def test_numpy_input_and_output_reach_the_library_uncopied(probe, model):
    x = random_input((2, 3, 64), 1)
    out = np.empty_like(x)
    assert model.forward(x, out=out) is out
    p = probe()
    assert p[0] == address(x), "input pointer"
    assert p[1] == address(out), "output pointer"
    assert p[2] == 0 and p[3] == 0, "no routing buffers asked for"
    # a view into a larger array (C-contiguous, offset): the library gets the view's own first element
    big = np.zeros((5, 3, 64), dtype=np.float32)
    big[2:4] = x
    view = big[2:4]
    again = model.forward(view)
    assert probe()[0] == address(big) + 2 * 3 * 64 * 4
    assert again.tobytes() == out.tobytes()
    # the output allocated by forward is the memory the library wrote
    assert probe()[1] == address(again)


def test_forward_routing_buffers_are_the_returned_arrays(probe, model):
    x = random_input((4, 64), 2)
    out = np.empty_like(x)
    routed = model.forward_routing(x, out=out)
    p = probe()
    assert p[0] == address(x) and p[1] == address(out)
    assert p[2] == address(routed.expert_ids)
    assert p[3] == address(routed.weights)
    assert p[4] == address(routed.dropped)
    assert p[5] == address(routed.probabilities)


class ArrayInterfaceOnly:
    """Exposes a ctypes float buffer through __array_interface__ only (no buffer protocol, no DLPack)."""

    def __init__(self, shape, values=None):
        count = int(np.prod(shape))
        self.storage = (ctypes.c_float * count)()
        if values is not None:
            ctypes.memmove(self.storage, values.ctypes.data, count * 4)
        self.__array_interface__ = {"shape": tuple(shape), "typestr": "<f4",
                                    "data": (ctypes.addressof(self.storage), False), "version": 3}

    @property
    def address(self):
        return ctypes.addressof(self.storage)


def test_array_interface_objects_are_used_in_place(probe, model):
    x = random_input((2, 3, 64), 3)
    src = ArrayInterfaceOnly(x.shape, x)
    dst = ArrayInterfaceOnly(x.shape)
    assert model.forward(src, out=dst) is dst
    p = probe()
    assert p[0] == src.address and p[1] == dst.address
    np.testing.assert_array_equal(np.asarray(dst), model.forward(x))


def test_pytorch_cpu_tensor_goes_through_without_a_copy(probe, model):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (CI has none; the __array_interface__ "
                                                "and DLPack paths are covered by the other tests)")
    x = torch.from_numpy(random_input((2, 3, 64), 4))
    out = torch.empty_like(x)
    assert model.forward(x, out=out) is out
    p = probe()
    assert p[0] == x.data_ptr(), "input pointer is the tensor's storage"
    assert p[1] == out.data_ptr(), "output pointer is the tensor's storage"
    assert out.numpy().tobytes() == model.forward(x.numpy()).tobytes()
    # a tensor that is a view at an offset
    big = torch.zeros(4, 3, 64)
    big[1:3] = x
    model.forward(big[1:3], out=out)
    assert probe()[0] == big[1:3].data_ptr() == big.data_ptr() + 3 * 64 * 4
    # requires_grad: DLPack refuses to export it, which is a TypeError naming the argument
    with pytest.raises(TypeError, match="input"):
        model.forward(x.clone().requires_grad_(True))


class DLPackOnly:
    """Exposes a NumPy array through DLPack only."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def test_dlpack_objects_are_used_in_place(probe, model):
    x = random_input((3, 64), 5)
    out = np.empty_like(x)
    model.forward(DLPackOnly(x), out=out)
    assert probe()[0] == address(x)
    assert out.tobytes() == model.forward(x).tobytes()


def test_what_would_need_a_copy_is_refused_naming_the_argument(model):
    x = random_input((2, 3, 64), 6)
    with pytest.raises(TypeError, match=r"input: dtype float64, expected float32"):
        model.forward(x.astype(np.float64))
    with pytest.raises(TypeError, match=r"input: expected a float32 array .* got list"):
        model.forward(x.tolist())
    with pytest.raises(ValueError, match=r"input: not C-contiguous"):
        model.forward(np.asfortranarray(x))
    with pytest.raises(ValueError, match=r"input: not C-contiguous"):
        model.forward(np.zeros((2, 3, 128), dtype=np.float32)[:, :, ::2])
    with pytest.raises(ValueError, match=r"input: last dimension 32, expected the model's hidden size 64"):
        model.forward(x[:, :, :32].copy())
    with pytest.raises(ValueError, match=r"input: 4 dimensions"):
        model.forward(x.reshape(1, 2, 3, 64))
    with pytest.raises(ValueError, match=r"input: shape \(0, 64\) holds no token"):
        model.forward(np.zeros((0, 64), dtype=np.float32))
    with pytest.raises(ValueError, match=r"out: shape \(2, 3, 63\), expected \(2, 3, 64\)"):
        model.forward(x, out=np.empty((2, 3, 63), dtype=np.float32))
    with pytest.raises(TypeError, match=r"out: dtype float16"):
        model.forward(x, out=np.empty(x.shape, dtype=np.float16))
    frozen = np.empty_like(x)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"out: read-only memory"):
        model.forward(x, out=frozen)


def test_the_extension_checks_buffers_itself(model):
    """The generated functions are not the API, but they must not trust their caller either."""
    from pimoe import cpimoe

    x = random_input((2, 64), 7)
    out = np.empty_like(x)
    handle = model._handle
    with pytest.raises(TypeError, match=r"input: expected 4-byte 'f' elements, got format 'd'"):
        cpimoe.pimoe_py_forward(handle, x.astype(np.float64), 1, 2, out, None, None)
    with pytest.raises(TypeError, match=r"out: expected a C-contiguous writable buffer"):
        cpimoe.pimoe_py_forward(handle, x, 1, 2, bytes(512), None, None)
    with pytest.raises(ValueError, match=r"expert_ids and expert_weights"):
        cpimoe.pimoe_py_forward(handle, x, 1, 2, out, np.empty(4, np.int32), None)
    # a size that disagrees with batch*seq*hidden reaches the library, which says so (the buffer's own length is
    # what the library is told, so it cannot be overrun)
    with pytest.raises(pimoe.Error) as e:
        cpimoe.pimoe_py_forward(handle, x, 2, 2, out, None, None)
    assert e.value.status == pimoe.Status.SIZE_MISMATCH
