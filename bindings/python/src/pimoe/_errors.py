# SPDX-License-Identifier: MIT
"""Status codes and the exception every failed libpimoe call raises."""
import enum

from . import cpimoe


class Status(enum.IntEnum):
    """A libpimoe status code (pimoe_status in pimoe_status.h). Codes are never renumbered."""

    OK = cpimoe.PIMOE_OK
    NULL_POINTER = cpimoe.PIMOE_ERR_NULL_POINTER
    INVALID_ARGUMENT = cpimoe.PIMOE_ERR_INVALID_ARGUMENT
    SIZE_MISMATCH = cpimoe.PIMOE_ERR_SIZE_MISMATCH
    UNKNOWN_OPTION = cpimoe.PIMOE_ERR_UNKNOWN_OPTION
    INVALID_OPTION = cpimoe.PIMOE_ERR_INVALID_OPTION
    NON_FINITE_INPUT = cpimoe.PIMOE_ERR_NON_FINITE_INPUT
    BACKEND_UNAVAILABLE = cpimoe.PIMOE_ERR_BACKEND_UNAVAILABLE
    OUT_OF_MEMORY = cpimoe.PIMOE_ERR_OUT_OF_MEMORY
    NOT_FOUND = cpimoe.PIMOE_ERR_NOT_FOUND
    IO = cpimoe.PIMOE_ERR_IO
    FORMAT = cpimoe.PIMOE_ERR_FORMAT
    UNSUPPORTED = cpimoe.PIMOE_ERR_UNSUPPORTED
    INTERNAL = cpimoe.PIMOE_ERR_INTERNAL
    CALLBACK = cpimoe.PIMOE_ERR_CALLBACK

    def describe(self):
        """The library's static text for the code (pimoe_status_string)."""
        return cpimoe.pimoe_status_string(int(self))


class Error(Exception):
    """A libpimoe call failed: ``status`` is its :class:`Status` and ``message`` the library's message, which names
    the option, file, tensor or argument at fault (the status text when the library gave none)."""

    def __init__(self, status, message):
        try:
            status = Status(status)
        except ValueError:  # a code newer than this binding: keep the number
            pass
        self.status = status
        self.message = message or cpimoe.pimoe_status_string(int(status))
        super().__init__(self.message)

    def __str__(self):
        name = self.status.name if isinstance(self.status, Status) else str(int(self.status))
        return f"{name}: {self.message}"

    def __reduce__(self):
        return (type(self), (int(self.status), self.message))


def error_for_status(status, message):
    """The exception for a failed call (called by the SWIG layer, pimoe_python.i, with the message it read on the
    failing call's thread)."""
    return Error(status, message)
