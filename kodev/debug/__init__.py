"""kodev debug: Delve in the container, and a debugging session that survives every save."""
