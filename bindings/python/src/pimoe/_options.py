# SPDX-License-Identifier: MIT
"""Options of a model: every layer-wide option by name (as keyword arguments, attributes or set()), the typed
setters by key, and the per-expert overrides."""
import contextlib
import enum
import numbers

from . import cpimoe


class Activation(enum.IntEnum):
    """Expert activation functions (pimoe_activation)."""

    GELU = cpimoe.PIMOE_ACT_GELU
    GELU_TANH = cpimoe.PIMOE_ACT_GELU_TANH
    SILU = cpimoe.PIMOE_ACT_SILU
    RELU = cpimoe.PIMOE_ACT_RELU
    TANH = cpimoe.PIMOE_ACT_TANH
    SWIGLU = cpimoe.PIMOE_ACT_SWIGLU
    SWIGLU_OAI = cpimoe.PIMOE_ACT_SWIGLU_OAI


class ExpertPreset(enum.IntEnum):
    """Named expert presets (pimoe_expert_preset)."""

    GENERIC = cpimoe.PIMOE_PRESET_GENERIC
    REASONING = cpimoe.PIMOE_PRESET_REASONING
    COMPUTATION = cpimoe.PIMOE_PRESET_COMPUTATION
    MATHEMATICAL = cpimoe.PIMOE_PRESET_MATHEMATICAL
    LOGICAL = cpimoe.PIMOE_PRESET_LOGICAL
    LANGUAGE = cpimoe.PIMOE_PRESET_LANGUAGE
    CREATIVE = cpimoe.PIMOE_PRESET_CREATIVE
    ANALYTICAL = cpimoe.PIMOE_PRESET_ANALYTICAL


# The option keys (pimoe_option), named as the C enum without its prefix: OptionKey.TOP_K, and the experimental ones
# (EXPERIMENTAL_*), which have no name for set(). Read from the generated module so that a key added to the header
# appears here without an edit.
OptionKey = enum.IntEnum(
    "OptionKey",
    {name[len("PIMOE_OPT_"):]: getattr(cpimoe, name) for name in dir(cpimoe) if name.startswith("PIMOE_OPT_")},
)
OptionKey.__doc__ = "Option keys (pimoe_option), for Options.set_int / set_float / set_string."


def _text(value):
    """An option value as the text pimoe_options_set_by_name parses."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, enum.Enum):  # Activation.SILU -> "silu"
        return value.name.lower()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))  # the shortest text that reads back as the same double
    if isinstance(value, str):
        return value
    raise TypeError(f"option value: expected bool, int, float, str or an enum, got {type(value).__name__}")


class Options:
    """Options of a model (pimoe_options).

    Every layer-wide option is settable by its name (the names of pimoe_options.h), as keyword arguments, as
    attributes, or with :meth:`set`; values are bool, int, float, str or :class:`Activation`::

        opts = pimoe.Options(hidden=512, num_experts=8, top_k=2, activation="swiglu", backend="cpu")
        opts.threads = 4
        opts.set("weight_dtype", "int8").expert_preset(0, pimoe.ExpertPreset.REASONING)

    Each setting is checked by the library when it is made (a bad name or value raises :class:`pimoe.Error` there,
    with the library's message naming the option); settings that depend on each other (top_k <= num_experts) are
    checked when a model is created. Nothing native is held: the settings are recorded in order and replayed into a
    pimoe_options object by each model made from them, so one Options may serve several models. Reading an
    attribute gives the value last set under that name. Not thread-safe while being modified.
    """

    ALL_EXPERTS = -1
    """The expert index meaning "every expert" in the per-expert overrides."""

    def __init__(self, **settings):
        object.__setattr__(self, "_setters", [])
        object.__setattr__(self, "_values", {})
        for name, value in settings.items():
            self.set(name, value)

    # ---------------------------------------------------------------- recording
    def _add(self, setter):
        with _native_options([]) as scratch:  # checked now, so the error points at the line that set it
            setter(scratch)
        self._setters.append(setter)
        return self

    def set(self, name, value):
        """Sets a layer-wide option by name, the value parsed by the library: ``set("top_k", 2)``."""
        if not isinstance(name, str):
            raise TypeError(f"option name: expected str, got {type(name).__name__}")
        text = _text(value)
        self._add(lambda h: cpimoe.pimoe_options_set_by_name(h, name, text))
        self._values[name] = value
        return self

    def __setattr__(self, name, value):
        if name.startswith("_"):
            raise AttributeError(f"{name}: not an option name")
        self.set(name, value)

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"option {name!r} was not set on these Options (unset options take the library's "
                             "defaults, listed in pimoe_options.h)")

    def set_int(self, key, value):
        """Sets an integer-typed option by key (:class:`OptionKey`; the library rejects a key of another type)."""
        k, v = int(key), int(value)
        return self._add(lambda h: cpimoe.pimoe_options_set_int(h, k, v))

    def set_float(self, key, value):
        """Sets a float-typed option by key."""
        k, v = int(key), float(value)
        return self._add(lambda h: cpimoe.pimoe_options_set_float(h, k, v))

    def set_string(self, key, value):
        """Sets a string-typed option by key."""
        k, v = int(key), str(value)
        return self._add(lambda h: cpimoe.pimoe_options_set_string(h, k, v))

    # ---------------------------------------------------------------- per-expert overrides
    def expert_preset(self, expert, preset):
        """Gives `expert` (or every expert: ALL_EXPERTS) a named preset (:class:`ExpertPreset`)."""
        e, p = int(expert), int(ExpertPreset(preset))
        return self._add(lambda h: cpimoe.pimoe_options_set_expert_preset(h, e, p))

    def expert_activation(self, expert, activation):
        """Overrides one expert's activation (:class:`Activation`)."""
        e, a = int(expert), int(Activation(activation))
        return self._add(lambda h: cpimoe.pimoe_options_set_expert_activation(h, e, a))

    def expert_width(self, expert, intermediate):
        """Overrides one expert's intermediate width."""
        e, w = int(expert), int(intermediate)
        return self._add(lambda h: cpimoe.pimoe_options_set_expert_width(h, e, w))

    def expert_pre_norm(self, expert, enabled):
        """Turns one expert's input LayerNorm on or off."""
        e, on = int(expert), 1 if enabled else 0
        return self._add(lambda h: cpimoe.pimoe_options_set_expert_pre_norm(h, e, on))

    def expert_weight_dtype(self, expert, dtype):
        """The storage format of one expert's matrices (any weight_dtype value but "auto")."""
        e, d = int(expert), str(dtype)
        return self._add(lambda h: cpimoe.pimoe_options_set_expert_weight_dtype(h, e, d))

    # ---------------------------------------------------------------- copies and native
    def copy(self):
        """An independent copy holding the same settings."""
        other = Options()
        other._setters.extend(self._setters)
        other._values.update(self._values)
        return other

    def __repr__(self):
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"pimoe.Options({shown})"


@contextlib.contextmanager
def _native_options(setters):
    """A pimoe_options holding `setters` applied in order, destroyed on exit whatever happens."""
    handle = cpimoe.pimoe_options_create()
    try:
        for setter in setters:
            setter(handle)
        yield handle
    finally:
        cpimoe.pimoe_options_destroy(handle)


def native_options(options):
    """The context manager giving the native options of `options` (None: a null handle, the library's defaults)."""
    if options is None:
        return contextlib.nullcontext(None)
    if not isinstance(options, Options):
        raise TypeError(f"options: expected pimoe.Options or None, got {type(options).__name__}")
    return _native_options(options._setters)
