"""tbreg: see overfitting and regularization in TensorBoard."""

__version__ = "0.1.0"
