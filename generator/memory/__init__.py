"""The tensor arena a board's library needs, computed from the model: TFLite-Micro's memory
plan (`planner`), the buffers the board's kernels ask for (`scratch`), the allocator's
persistent data on a 32-bit core (`allocator`), checked against the host runtime (`arena`)."""
