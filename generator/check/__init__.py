"""Checking a deployment: the golden vectors the firmware's boot-time self-test compares with
(`golden`, inputs chosen away from rounding ties with `perturb`), `verify` (the firmware's way
of running the model against TFLite-Micro's own), and how far two runs' outputs are apart
(`compare`)."""
