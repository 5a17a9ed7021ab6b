"""A fitted scikit-learn pipeline compiled to a numpy-only program (issue 15): exact, nothing unpickled.

`program` is the artifact format, `evaluate` runs it with numpy alone (the serving side), `compile` builds it from the
fitted pipeline (the publisher side, which imports scikit-learn). Import the submodules directly: this package
imports nothing, so serving never loads scikit-learn through it.
"""
