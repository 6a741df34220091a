"""Trains the `regularizers` family into <logdir>/regularizers/<model>, after copying the sizes
family's baseline run (tiny; imdb: original) in beside them.

On mnist1d and higgs: the tutorial's l2, dropout, combined, then Géron's l1, l1_l2, max_norm and
batch_norm (see `tbreg-train --list`); dropout models also get a Monte-Carlo dropout line.

    python -m tbreg.train_regularizers                # after tbreg.train_sizes
    python -m tbreg.train_regularizers --models=l2,dropout,combined   # the tutorial's three
    python -m tbreg.train_regularizers --baseline=    # no baseline copy
"""

import sys

from tbreg import _train_script, families

_train_script.add_models_validator(families.REGULARIZERS)


def main(argv):
    sys.exit(_train_script.run("regularizers", argv))


def run():
    _train_script.start(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
