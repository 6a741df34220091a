"""tbreg: see overfitting and regularization in TensorBoard."""

import re

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"', open("tbreg/__init__.py").read()).group(1)

setup(
    name="tbreg",
    version=version,
    description="See overfitting and regularization in TensorBoard: model families, callbacks, plugin.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tbreg", "tbreg.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",  # TF 2.21 no longer installs it
        "tensorflow-docs",
        "matplotlib",  # tensorflow-docs' plots need it but do not declare it
        "numpy",
        "scipy",  # the t-distribution of seed groups' confidence bands and paired comparisons
        "absl-py",
        "pandas",  # C CSV reader for HIGGS
        "isal",  # ISA-L inflate: HIGGS .csv.gz decompressed ~3x faster than zlib
        "mnist1d",
        "plotly",  # the overfitting plugin serves plotly.js from this package (no CDN)
        "threadpoolctl",  # WeightDiagnostics: numpy's BLAS on one thread for its small eigenproblems
        "rich",  # the training scripts' live progress lines (Keras 3 depends on it too)
    ],
    package_data={"tbreg.plugin": ["static/*"]},
    extras_require={
        "ray": ["ray>=2.9"],  # tbreg sweep --engine=ray
        # the tests run Ray on a local two-worker cluster; pytest-xdist runs them on two workers (pytest.ini)
        "test": [
            "pytest>=8",
            "pytest-xdist>=3",
            "hypothesis",
            "ray>=2.9",
            "pexpect",
            "ruff==0.17.6",
        ],  # pexpect: a real pty
    },
    entry_points={
        "console_scripts": [
            "tbreg=tbreg.cli:run",
            "tbreg-train-sizes=tbreg.train_sizes:run",
            "tbreg-train-regularizers=tbreg.train_regularizers:run",
            "tbreg-train=tbreg.train:run",
        ],
        "tensorboard_plugins": ["overfitting = tbreg.plugin.plugin:OverfittingLoader"],
    },
)
