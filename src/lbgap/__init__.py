"""lbgap: large-batch training and the generalization gap, reproduced end to end."""

__version__ = "0.1.0"
