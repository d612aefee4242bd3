"""The `evoforge` command line: one module a group of subcommands."""
