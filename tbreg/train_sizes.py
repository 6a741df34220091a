"""Trains the `sizes` family (tiny, small, medium, large, paper) into <logdir>/sizes/<model>.

python -m tbreg.train_sizes                       # offline default: mnist1d, a few minutes
python -m tbreg.train_sizes --dataset=higgs       # the tutorial (downloads 11,000 rows)
python -m tbreg.train_sizes --models=tiny,large --max_epochs=50
"""

import sys

from tbreg import _train_script, families

_train_script.add_models_validator(families.SIZES)


def main(argv):
    sys.exit(_train_script.run("sizes", argv))


def run():
    _train_script.start(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
