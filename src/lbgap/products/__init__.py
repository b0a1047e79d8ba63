"""Tables, figures, claims and reports, from result files only (never the training loop)."""
