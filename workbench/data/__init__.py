"""Preference pairs as data: the schema, reading and validating files, splits, the demo and synthetic pools,
descriptive numbers, and fetching the public datasets. Imports nothing else from the workbench."""
