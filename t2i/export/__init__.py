"""Exports: SavedModels for TF Serving."""
