"""TensorBoard plugins shipped with tbreg (registered through the `tensorboard_plugins` entry point)."""
