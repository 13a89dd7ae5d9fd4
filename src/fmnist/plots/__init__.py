"""Figures written as PNG files (matplotlib Agg / Pillow); every writer is atomic."""
