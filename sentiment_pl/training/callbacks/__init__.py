"""The callbacks the CLI adds to every run (each configurable by its name, e.g. `--predictions.output`):
throughput and the step budget, prediction files, calibrated testing, example predictions in TensorBoard."""
