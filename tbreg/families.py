"""Model families as data: which models a family trains and where its baseline comes from."""

import dataclasses

from tbreg.errors import UserError
from tbreg.models import ModelSpec

LARGE = (512, 512, 512, 512)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    models: tuple[ModelSpec, ...]
    baseline_family: str | None = None  # family whose run is copied in as the baseline
    default_baseline: str | None = None  # model name of that run

    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def select(self, names) -> list[ModelSpec]:
        """The specs named in `names` (all when empty), in the order given."""
        if not names:
            return list(self.models)
        by_name = {m.name: m for m in self.models}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise UserError(
                f"unknown model(s) {', '.join(unknown)} in family {self.name}; "
                f"choose from {', '.join(by_name)}"
            )
        return [by_name[n] for n in names]


# Baldi, Sadowski & Whiteson 2014, as in the tutorial's seed: 4x300 tanh, small normal inits,
# L2 1e-5 on the hidden kernels after the first, Dropout 0.5 before the head, SGD with momentum.
PAPER = ModelSpec(
    "paper", (300, 300, 300, 300), activation="tanh", l2=1e-5, l2_first=False,
    dropout_before_output=0.5, init_std=(0.1, 0.05, 0.001), optimizer="paper_sgd",
)

SIZES = Family(
    "sizes",
    (
        ModelSpec("tiny", (16,)),
        ModelSpec("small", (16, 16)),
        ModelSpec("medium", (64, 64, 64)),
        ModelSpec("large", LARGE),
        PAPER,
    ),
)

REGULARIZERS = Family(
    "regularizers",
    (
        ModelSpec("l2", LARGE, l2=1e-3),
        ModelSpec("dropout", LARGE, dropout=0.5),
        ModelSpec("combined", LARGE, l2=1e-4, dropout=0.5),
    ),
    baseline_family="sizes",
    default_baseline="tiny",
)

FAMILIES = {f.name: f for f in (SIZES, REGULARIZERS)}


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}")
    return FAMILIES[name]
