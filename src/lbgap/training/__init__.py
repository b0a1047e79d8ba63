"""One training run: networks, optimizers, schedules' use, DDP, checkpoints."""
