"""Recipes: files, shipped names, the official repositories' dialect, and the schema of typed settings."""
