"""The arguments each architecture may be built with, and their bounds: what a model file's metadata is checked
against (fmnist.checkpoint) before anything is built from it."""

from __future__ import annotations

import reprlib
from typing import Any

MAX_CLASSES = 10_000

# The arguments each architecture takes, with bounds, checked before anything is built: (low, high) for an int,
# (low, high, most items) for a list of ints, the allowed strings, (bool,) for true/false or (float, low, high) for
# a number. Generous for real models, they cap what even
# the meta-device build costs (modules, not memory).
_SIZE = (1, 1024)
COMMON_ARGS: dict[str, tuple] = {"in_channels": (1, 1), "num_classes": (1, MAX_CLASSES), "image_size": (28, 28)}
MODEL_ARG_BOUNDS: dict[str, dict[str, tuple]] = {
    "mlp": {"hidden": (1, 8192)},
    "baseline": {"filters": _SIZE, "padding": ("valid", "same")},
    "seed003": {}, "seed004": {}, "minivgg": {},
    "resnet": {"stem": _SIZE, "widths": (*_SIZE, 8), "blocks": (0, 16, 8), "whiten": (0, 7), "dirac": (bool,),
               "bn_weight": (bool,), "bn_momentum": (float, 0.0, 1.0), "logit_scale": (float, 1e-3, 1e3),
               "stem_stride": (1, 2), "last_pool": (bool,)},
}
# The other arguments of an architecture without bounds above (a plugin's, a test's): a bool, a short string, or
# ints in this range, alone or in a short list.
_OTHER_INTS = (0, 65_536, 16)


def arg_problems(model: str, args: dict[str, Any]) -> list[str]:
    """What is wrong with `args` for architecture `model`: arguments it does not take, values out of bounds."""
    known = MODEL_ARG_BOUNDS.get(model)
    bounds, problems = COMMON_ARGS | (known or {}), []
    for name, value in args.items():
        b = bounds.get(name)
        if b is None and known is not None:
            problems.append(f"{model!r} takes no argument {reprlib.repr(name)}")
        elif b is None:  # a plugin's own argument (one it does not take fails its build)
            if not (isinstance(value, (bool, str)) and len(str(value)) <= 64 or _within(value, _OTHER_INTS)
                    or _within(value, _OTHER_INTS[:2])):
                problems.append(f"model_args {name}={reprlib.repr(value)} is not a bool, short string or small int")
        elif not _within(value, b):
            allowed = ("|".join(b) if isinstance(b[0], str) else "true|false" if b[0] is bool
                       else f"a number in {b[1]}..{b[2]}" if b[0] is float
                       else f"{b[0]}..{b[1]}" + (f", {b[2]} at most" if len(b) > 2 else ""))
            problems.append(f"model_args {name}={reprlib.repr(value)} is out of bounds (allowed: {allowed})")
    return problems


def _within(value: Any, bound: tuple) -> bool:
    """Whether `value` is one of the strings `bound`, an int in bound[0]..bound[1], or a list of at most bound[2] such ints."""
    if isinstance(bound[0], str):
        return isinstance(value, str) and value in bound
    if bound[0] is bool:
        return isinstance(value, bool)
    if bound[0] is float:
        return type(value) in (int, float) and bound[1] <= value <= bound[2]  # NaN fails both comparisons
    if len(bound) == 3:
        return isinstance(value, (list, tuple)) and len(value) <= bound[2] and all(_within(v, bound[:2]) for v in value)
    return type(value) is int and bound[0] <= value <= bound[1]  # type, not isinstance: true is not a size
