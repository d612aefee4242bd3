"""The search engine, one sub-package a responsibility.

`run` (config, controller, executors, start and resume), `propose` (prompts, the LLM ensemble, the offline
proposer), `program` (patching and program text), `analysis` (what a run found: queries, views, plots, report,
export) and `cli` (the `evoforge` command line). Problem files import from `evoforge`, not from here.
"""
