"""Stage 'assemble': binaries, kodata and a base image -> an `Image` whose layers are tar files on disk."""
