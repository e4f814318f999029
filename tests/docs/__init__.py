"""The README and the docs site, their commands run as written."""
