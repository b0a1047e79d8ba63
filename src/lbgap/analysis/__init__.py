"""Analyses of finished runs' weights: sharpness, Hessian, interpolation, rescaling."""
