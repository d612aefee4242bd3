"""Running a search: its config, the controller loop, the executors that evaluate, start and resume."""
