"""Backbones (BACKBONES registry)."""
