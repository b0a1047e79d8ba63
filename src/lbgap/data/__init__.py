"""Datasets found, prepared and loaded; ImageNet streamed from JPEG folders."""
