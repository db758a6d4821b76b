"""Shared pytest setup: the `slow` marker is deselected by default (see pyproject.toml)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
