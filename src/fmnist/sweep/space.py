"""The search space: `--param lr=0.05:0.4:log`, `--param epochs=8,10,12`, `--param batch_size=128:512:int`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fmnist.config import ABOUT
from fmnist.errors import UsageError
from fmnist.recipes.overrides import canonical, default_value, parse_value

KINDS = ("float", "log", "int", "choice")


@dataclass(frozen=True)
class Param:
    """One recipe setting to search: a float range (uniform or log), a whole-number range, or a list of choices."""

    key: str  # the recipe setting, full name (optimizer.lr)
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        """The setting's short name (its last part), a trial's column and key where no other parameter shares it."""
        return self.key.rpartition(".")[2]

    def suggest(self, trial) -> Any:
        """This parameter's value for an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log")

    def extremes(self) -> tuple[Any, ...]:
        """The values that bound what a trial may draw: every choice, or both ends of the range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return int(self.low), int(self.high)
        return self.low, self.high

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.key} in {{{', '.join(map(str, self.choices))}}}"
        return f"{self.key} in [{self.low:g}, {self.high:g}]" + (" (log)" if self.kind == "log" else
                                                                (" (whole)" if self.kind == "int" else ""))


def labels(params: tuple[Param, ...] | list[Param]) -> dict[str, str]:
    """Each parameter's column (and trials.json key): its short name, or its full one where two share a short
    name (optimizer.name and schedule.name)."""
    short = [p.name for p in params]
    return {p.key: p.name if short.count(p.name) == 1 else p.key for p in params}


# What a sweep holds fixed: the held-out split it scores on, and the recipe's labels.
FIXED = ("validation", "val_fraction", *ABOUT)


def parse_param(spec: str) -> Param:
    """`key=low:high[:log|:int]` or `key=a,b,c` as a Param; a UsageError saying the forms otherwise."""
    forms = "KEY=LOW:HIGH, KEY=LOW:HIGH:log, KEY=LOW:HIGH:int or KEY=A,B,C (e.g. lr=0.05:0.4:log, epochs=8,10,12)"
    key, sep, body = spec.partition("=")
    if not sep or not key.strip() or not body:
        raise UsageError(f"--param {spec!r} is not a parameter; use {forms}")
    key = canonical(key.strip())
    if key in FIXED:
        raise UsageError(f"--param {key} cannot be swept: a sweep scores every trial on one held-out split of the "
                         "training images and keeps the recipe's name and description; sweep its training settings")
    if "[" in body or "{" in body or isinstance(default_value(key), (list, tuple, dict)):
        raise UsageError(f"--param {spec!r}: settings whose values are lists or objects (such as optimizer.betas "
                         "or augment.resize) cannot be swept; sweep numbers, names or true/false")
    if "," in body or ":" not in body:
        choices = tuple(parse_value(v.strip()) for v in body.split(",") if v.strip())
        if not choices:
            raise UsageError(f"--param {spec!r} lists no values; use {forms}")
        return Param(key, "choice", choices=choices)
    parts = body.split(":")
    scale = parts[2].strip().lower() if len(parts) == 3 else "float"
    if len(parts) not in (2, 3) or scale not in ("float", "log", "int"):
        raise UsageError(f"--param {spec!r}: unknown range; use {forms}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise UsageError(f"--param {spec!r}: the bounds must be numbers; use {forms}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UsageError(f"--param {spec!r}: the range needs finite LOW < HIGH")
    if scale == "log" and low <= 0:
        raise UsageError(f"--param {spec!r}: a log range needs LOW > 0")
    if scale == "int" and (low != int(low) or high != int(high)):
        raise UsageError(f"--param {spec!r}: a whole-number range needs whole bounds")
    return Param(key, scale, low, high)
