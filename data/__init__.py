"""The project's data folder. Installed as the package `rbr_data` (see pyproject.toml), which carries only the
run-time defaults: grader heads, head spec, RBR weights, seed prompts and synth instructions."""
