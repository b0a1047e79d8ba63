"""The plan: the config validated and expanded into runs, their layout and resources. Torch-free."""
