# ---------------------------------------------------------------- analyses of finished runs
# (Sharpness, Hessian and interpolation jobs per checkpoint are added here.)
