"""cra: a local, offline coding agent for C, served as a language server."""
