"""The grid of a sweep: which hyperparameters it may vary and how their values are read."""

import math

from tbreg import models
from tbreg.errors import UserError


def _bool(text) -> bool:
    if isinstance(text, bool):
        return text
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("not true/false")


def _rate(text) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError("not in [0, 1)")
    return value


def _nonnegative(text) -> float:
    value = float(text)
    if not 0 <= value < math.inf:  # NaN fails too
        raise ValueError("not a finite number >= 0")
    return value


def _positive(text) -> float:
    value = _nonnegative(text)
    if value == 0:
        raise ValueError("0; give a number > 0")
    return value


def _positive_int(text) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("below 1")
    return value


def _units(text) -> tuple[int, ...]:
    if isinstance(text, (list, tuple)):
        return tuple(_positive_int(u) for u in text)
    return tuple(_positive_int(u) for u in str(text).split("x")) if str(text) else ()


def _choice(options):
    def parse(text) -> str:
        if str(text) not in options:
            raise ValueError(f"not one of {', '.join(options)}")
        return str(text)

    return parse


def _activation(text) -> str:
    import keras

    keras.activations.get(str(text))  # ValueError for an unknown name
    return str(text)


def _dtype_policy(text) -> str:
    from tbreg import config

    config.check_dtype_policy(str(text))  # a one-line UserError on a CPU without bfloat16
    return str(text)


# name -> (what it changes: "spec" (the model) or "config" (the training), parser)
GRID = {
    "l1": ("spec", _nonnegative),
    "l2": ("spec", _nonnegative),
    "dropout": ("spec", _rate),
    "max_norm": ("spec", _nonnegative),
    "batch_norm": ("spec", _bool),
    "activation": ("spec", _activation),
    "optimizer": ("spec", _choice(models.OPTIMIZERS)),
    "schedule": ("spec", _choice(models.SCHEDULES)),
    "learning_rate": ("spec", _nonnegative),
    "units": ("spec", _units),
    "batch_size": ("config", _positive_int),
    "patience": ("config", int),
    "max_epochs": ("config", _positive_int),
    "decay_epochs": ("config", _positive),
    "n_train": ("config", _positive_int),
    "dtype_policy": ("config", _dtype_policy),
}


def _format(value) -> str:
    """A grid value as it appears in a run name: 0.0001, 1e-05, 16x16, true, relu."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def parse_axis(name: str, values) -> tuple[str, tuple]:
    """(name, values) of one grid axis; `values` is a comma string or a list (from a config file)."""
    if name not in GRID:
        raise UserError(f"grid: unknown hyperparameter {name!r}; choose from {', '.join(GRID)}")
    raw = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    if not raw or any(v == "" for v in raw):
        raise UserError(f"grid: {name} needs a comma list of values, e.g. {name}=1e-4,1e-3")
    parsed = []
    for v in raw:
        try:
            value = GRID[name][1](v)
        except (TypeError, ValueError) as e:
            raise UserError(f"grid: {name}={v}: {e}; give a valid value") from None
        if value not in parsed:
            parsed.append(value)
    return name, tuple(parsed)


def parse_grid(items) -> tuple[tuple[str, tuple], ...]:
    """Grid axes from `name=v1,v2` items (an item may hold several, separated by spaces)."""
    axes = {}
    for item in items:
        for word in str(item).split():
            name, sep, values = word.partition("=")
            if not sep:
                raise UserError(f"grid: {word!r} is not name=v1,v2 (e.g. l2=1e-4,1e-3)")
            if name in axes:
                raise UserError(f"grid: {name} is given twice; give all its values in one {name}=v1,v2")
            axes[name] = parse_axis(name, values)[1]
    return tuple(axes.items())
