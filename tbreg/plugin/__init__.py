"""The "overfitting" TensorBoard plugin: compare a family's runs, their gaps and their penalties.

`metadata` and `summary` are the writer side (imported by training code); `plugin` is the reader
side that TensorBoard loads. Importing this package imports neither TensorFlow nor the plugin.
"""
