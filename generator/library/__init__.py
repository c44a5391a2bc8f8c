"""What each board's pinned TFLite-Micro library has and computes: which `AddXxx()` registers
each operator (`resolver`, tables derived from each pinned header), the pinned libraries and
kernel families themselves (`pinned`), and where they compute something other than the host's
reference run, with the rewrites of the model that make them compute what it means
(`numerics`, `rewrite`), and the geometry of kernels whose scratch sizes and defects both hang on
it (`esp_nn_p4`, `cmsis_nn_mve`), read by memory/scratch.py too. Data in data/, each fact citing
its pinned source."""
