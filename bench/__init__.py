"""kodev's benchmark (issue 5): `python -m bench` (full) or `python -m bench --quick`. See bench/__main__.py."""
