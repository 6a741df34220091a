"""Model families as data: which models a family trains, per dataset, and where its baseline comes from.

`REGISTRY[dataset][family]` is every family tbreg knows; `get(name, dataset)` looks one up.

- mnist1d, higgs — the TensorFlow tutorial "Overfit and underfit": `sizes` (tiny … large, the
  paper's model) and `regularizers` (L2, dropout, both), Adam with InverseTimeDecay, elu.
- imdb — Chollet, *Deep Learning with Python* 2e ch. 5 (1e 4.4): `sizes` (smaller 4-4, original
  16-16, bigger 512-512) and `regularizers` (L2 0.002, dropout 0.5), relu, RMSprop 1e-3.
- mnist — Chollet 2e ch. 5: `learning_rate` (Dense 512, RMSprop 1.0 vs 1e-2) and `capacity`
  (logistic regression vs 96-96), relu, RMSprop.

Every dataset's `regularizers` family adds Géron's (*Hands-On ML* ch. 11) l1, l1_l2, max_norm and
batch_norm models, and its dropout models are also evaluated with Monte-Carlo dropout. Every
dataset has `schedules`: the tutorial's InverseTimeDecay, exponential decay and 1cycle.
"""

import dataclasses

from tbreg import text
from tbreg.errors import UserError
from tbreg.model_spec import ModelSpec

LARGE = (512, 512, 512, 512)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    models: tuple[ModelSpec, ...]
    baseline_family: str | None = None  # family whose run is copied in as the baseline
    default_baseline: str | None = None  # model name of that run
    source: str = ""  # where the experiment comes from (for --list and the README)

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
                f"unknown model(s) {', '.join(unknown)} in family {self.name}; choose from {', '.join(by_name)}"
            )
        return [by_name[n] for n in names]


# Baldi, Sadowski & Whiteson 2014, as in the tutorial's seed: 4x300 tanh, small normal inits,
# L2 1e-5 on the hidden kernels after the first, Dropout 0.5 before the head, SGD with momentum.
PAPER = ModelSpec(
    "paper",
    (300, 300, 300, 300),
    activation="tanh",
    l2=1e-5,
    l2_first=False,
    dropout_before_output=0.5,
    init_std=(0.1, 0.05, 0.001),
    optimizer="paper_sgd",
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
    source="TensorFlow tutorial: Overfit and underfit",
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
    source="TensorFlow tutorial: Overfit and underfit",
)

# The tutorial's two families as they are (what tbreg's first scripts trained); `get` without a
# dataset returns these.
FAMILIES = {f.name: f for f in (SIZES, REGULARIZERS)}

# ---------------------------------------------------------------------------------------------
# Géron's regularizers (Hands-On ML ch. 11) and the schedules, added to a base model.

MC_SAMPLES = 20  # Monte-Carlo dropout passes per evaluation (Géron uses 100; 20 keeps it cheap per epoch)
GERON_SOURCE = "Géron, Hands-On ML ch. 11"


def geron_regularizers(base: ModelSpec) -> tuple[ModelSpec, ...]:
    """l1, l1_l2 (Chollet's factors 0.001), max_norm (r = 1) and batch_norm versions of `base`."""
    return (
        dataclasses.replace(base, name="l1", l1=1e-3),
        dataclasses.replace(base, name="l1_l2", l1=1e-3, l2=1e-3),
        dataclasses.replace(base, name="max_norm", max_norm=1.0),
        dataclasses.replace(base, name="batch_norm", batch_norm=True),
    )


def with_mc_dropout(specs) -> tuple[ModelSpec, ...]:
    """The specs, those with dropout also evaluated with Monte-Carlo dropout (validation_mc)."""
    return tuple(dataclasses.replace(s, mc_samples=MC_SAMPLES) if s.dropout else s for s in specs)


def schedules(base: ModelSpec, source: str) -> Family:
    """`base` trained with the tutorial's InverseTimeDecay, Géron's exponential decay and 1cycle."""
    return Family(
        "schedules",
        tuple(
            dataclasses.replace(base, name=name, schedule=name) for name in ("inverse_time", "exponential", "one_cycle")
        ),
        source=f"{source}; {GERON_SOURCE}",
    )


def _extended_regularizers(family: Family, base: ModelSpec) -> Family:
    return dataclasses.replace(
        family,
        models=with_mc_dropout(family.models + geron_regularizers(base)),
        source=f"{family.source}; {GERON_SOURCE}",
    )


# ---------------------------------------------------------------------------------------------
# Chollet, Deep Learning with Python 2e ch. 5 (IMDB as in 1e 4.4): relu, RMSprop at Keras' 1e-3.

CHOLLET_SOURCE = "Chollet, Deep Learning with Python 2e ch. 5"


def chollet(name: str, units: tuple[int, ...], **kw) -> ModelSpec:
    return ModelSpec(name, units, activation="relu", optimizer="rmsprop", schedule="constant", **kw)


IMDB_ORIGINAL = chollet("original", (16, 16))
IMDB_SIZES = Family(
    "sizes", (chollet("smaller", (4, 4)), IMDB_ORIGINAL, chollet("bigger", (512, 512))), source=CHOLLET_SOURCE
)


def chollet_regularizers(base: ModelSpec, baseline_family: str) -> Family:
    """Chollet's L2 (0.002) and dropout (0.5) versions of `base`, with `base` as the baseline."""
    return Family(
        "regularizers",
        (dataclasses.replace(base, name="l2", l2=0.002), dataclasses.replace(base, name="dropout", dropout=0.5)),
        baseline_family=baseline_family,
        default_baseline=base.name,
        source=CHOLLET_SOURCE,
    )


IMDB_REGULARIZERS = chollet_regularizers(IMDB_ORIGINAL, "sizes")

MNIST_LARGE = chollet("large", (96, 96))
MNIST_LEARNING_RATE = Family(
    "learning_rate",
    (chollet("lr_1", (512,), learning_rate=1.0), chollet("lr_1e-2", (512,), learning_rate=1e-2)),
    source=CHOLLET_SOURCE,
)
MNIST_CAPACITY = Family("capacity", (chollet("small", ()), MNIST_LARGE), source=CHOLLET_SOURCE)
# Chollet's IMDB regularizers applied to his MNIST model that overfits (capacity/large).
MNIST_REGULARIZERS = chollet_regularizers(MNIST_LARGE, "capacity")

TUTORIAL_LARGE = ModelSpec("large", LARGE)


def _tutorial_families() -> dict[str, Family]:
    return {
        "sizes": SIZES,
        "regularizers": _extended_regularizers(REGULARIZERS, TUTORIAL_LARGE),
        "schedules": schedules(TUTORIAL_LARGE, "TensorFlow tutorial"),
    }


REGISTRY: dict[str, dict[str, Family]] = {
    "mnist1d": _tutorial_families(),
    "higgs": _tutorial_families(),
    "imdb": {
        "sizes": IMDB_SIZES,
        "regularizers": _extended_regularizers(IMDB_REGULARIZERS, IMDB_ORIGINAL),
        "schedules": schedules(IMDB_ORIGINAL, CHOLLET_SOURCE),
    },
    "mnist": {
        "learning_rate": MNIST_LEARNING_RATE,
        "capacity": MNIST_CAPACITY,
        "regularizers": _extended_regularizers(MNIST_REGULARIZERS, MNIST_LARGE),
        "schedules": schedules(MNIST_LARGE, CHOLLET_SOURCE),
    },
}


def family_names() -> list[str]:
    """Every family name of any dataset, in registry order."""
    return list(dict.fromkeys(name for fams in REGISTRY.values() for name in fams))


def model_names(family: str) -> list[str]:
    """Every model name `family` has for any dataset (for flag validation before the dataset is known)."""
    return list(dict.fromkeys(m.name for fams in REGISTRY.values() if family in fams for m in fams[family].models))


def get(name: str, dataset: str | None = None) -> Family:
    """Family `name` of `dataset`; without a dataset, the tutorial's `sizes` / `regularizers` as they were."""
    if dataset is None:
        if name not in FAMILIES:
            raise UserError(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}")
        return FAMILIES[name]
    if dataset not in REGISTRY:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(REGISTRY)}")
    if name not in REGISTRY[dataset]:
        raise UserError(
            f"{dataset} has no family {name!r}; its families: {', '.join(REGISTRY[dataset])} (see tbreg-train --list)"
        )
    return REGISTRY[dataset][name]


def registry_rows() -> list[tuple[str, str, str, str]]:
    """(family, model, datasets, description) for every model, grouped by family: what --list prints.

    Models of the same family and name that are the same spec on several datasets share a row.
    """
    rows = {}
    for dataset, fams in REGISTRY.items():
        for family in fams.values():
            for spec in family.models:
                key = (family.name, spec.name, spec)
                rows.setdefault(key, []).append(dataset)
    order = family_names()
    ordered = sorted(rows.items(), key=lambda kv: order.index(kv[0][0]))  # stable: registry order within a family
    return [(fam, model, ",".join(datasets), spec.describe()) for (fam, model, spec), datasets in ordered]


def format_registry() -> str:
    """The registry as a table: family, model, datasets, description."""
    return text.table(("family", "model", "datasets", "model spec"), registry_rows())
