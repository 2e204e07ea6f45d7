"""RM Curation Workbench."""
