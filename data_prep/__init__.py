"""Binaries that turn raw datasets into what t2i reads."""
